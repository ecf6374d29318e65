"""A SYNTHETIC slot-filling + intent-detection corpus, generated from templates.

It exists so that the quickstart runs on a fresh machine with no data. It is not a real
corpus and results on it say nothing about real data; point ``data.path`` at real files
(for instance the ATIS layout) for real experiments. Generation is deterministic for a
given seed. The templates mix intents that share slots (flights vs fares vs status) and
fillers of varying length, so a model is neither perfect nor hopeless after a few dozen
examples and active learning has something to choose.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from mtal_ray.data.corpus import Corpus
from mtal_ray.data.schema import make_table
from mtal_ray.data.slu import write_slu

CITIES = [
    "boston",
    "denver",
    "new york",
    "san francisco",
    "dallas",
    "atlanta",
    "seattle",
    "las vegas",
    "chicago",
    "miami",
    "salt lake city",
    "phoenix",
    "washington",
    "orlando",
]
AIRLINES = ["delta", "united", "american airlines", "alaska", "jetblue", "southwest"]
DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
TIMES = ["morning", "afternoon", "evening", "night"]
CUISINES = ["thai", "italian", "mexican", "indian", "sushi", "vegan"]
ARTISTS = ["miles davis", "taylor swift", "the beatles", "nina simone", "daft punk"]

# Each template: (intent, text with {slot} holes). Slot names are the BIO types.
TEMPLATES: list[tuple[str, str]] = [
    ("book_flight", "book a flight from {fromloc} to {toloc}"),
    ("book_flight", "i want to fly from {fromloc} to {toloc} on {day}"),
    ("book_flight", "get me a {airline} flight to {toloc} {day} {period}"),
    ("book_flight", "reserve a seat from {fromloc} to {toloc} in the {period}"),
    ("flight_fare", "how much is a ticket from {fromloc} to {toloc}"),
    ("flight_fare", "what does {airline} charge to fly to {toloc} on {day}"),
    ("flight_fare", "cheapest fare from {fromloc} to {toloc}"),
    ("flight_status", "is the {airline} flight to {toloc} on time"),
    ("flight_status", "status of my flight from {fromloc} {day} {period}"),
    ("weather", "what is the weather in {city} on {day}"),
    ("weather", "will it rain in {city} this {period}"),
    ("restaurant", "find a {cuisine} restaurant in {city}"),
    ("restaurant", "table for two at a {cuisine} place near {city} {day} {period}"),
    ("music", "play something by {artist}"),
    ("music", "put on {artist} in the {period}"),
    ("book_flight#flight_fare", "book a flight from {fromloc} to {toloc} and tell me the fare"),
]
FILLERS = {
    "fromloc": CITIES,
    "toloc": CITIES,
    "city": CITIES,
    "day": DAYS,
    "period": TIMES,
    "airline": AIRLINES,
    "cuisine": CUISINES,
    "artist": ARTISTS,
}
SLOT_TYPE = {
    "fromloc": "fromloc.city_name",
    "toloc": "toloc.city_name",
    "city": "city_name",
    "day": "depart_date.day_name",
    "period": "depart_time.period_of_day",
    "airline": "airline_name",
    "cuisine": "cuisine",
    "artist": "artist",
}


def _utterance(rng: np.random.Generator) -> tuple[list[str], list[str], str]:
    intent, template = TEMPLATES[int(rng.integers(len(TEMPLATES)))]
    tokens: list[str] = []
    tags: list[str] = []
    for piece in template.split(" "):
        if piece.startswith("{"):
            slot = piece[1:-1]
            words = FILLERS[slot][int(rng.integers(len(FILLERS[slot])))].split(" ")
            kind = SLOT_TYPE[slot]
            tokens += words
            tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(words) - 1)
        else:
            tokens.append(piece)
            tags.append("O")
    return tokens, tags, intent


_CHUNK = 50_000


def make_synthetic_corpus(
    n_train: int = 400, n_dev: int = 100, n_test: int = 100, seed: int = 0
) -> Corpus:
    """Generate the SYNTHETIC SF+ID corpus (splits ``train``, ``dev``, ``test``)."""
    rng = np.random.default_rng(seed)
    corpus = Corpus(path=Path(f"synthetic-sf-id-seed{seed}"), format="slu")
    for split, size in (("train", n_train), ("dev", n_dev), ("test", n_test)):
        chunks = []  # Arrow per chunk: a pool of millions never exists as Python rows at once
        for start in range(0, max(size, 1), _CHUNK):
            stop = min(start + _CHUNK, size)
            rows = [_utterance(rng) for _ in range(start, stop)]
            chunks.append(
                make_table(
                    {
                        "id": [f"{split}-{i}" for i in range(start, stop)],
                        "tokens": [r[0] for r in rows],
                        "sf.tags": [r[1] for r in rows],
                        "id.label": [r[2] for r in rows],
                    }
                )
            )
        corpus.splits[split] = pa.concat_tables(chunks).combine_chunks()
    return corpus


def write_synthetic_corpus(root: str | Path, **kwargs: int) -> Path:
    """Write the SYNTHETIC corpus under ``root`` in the ATIS folder layout; returns ``root``."""
    root = Path(root)
    for split, table in make_synthetic_corpus(**kwargs).splits.items():
        write_slu(table, root / split)
    (root / "README.md").write_text(
        "# SYNTHETIC corpus (generated by mtal_ray.data.synthetic)\n\n"
        "Template-generated slot filling + intent detection utterances for the quickstart.\n"
        "Not real data: do not report results on it.\n",
        encoding="utf-8",
    )
    return root
