"""Tiny hand-made tables in the data contract, shared by the tasks/models/training tests."""

from __future__ import annotations

import pyarrow as pa

from mtal_ray.data.schema import make_table

ALL_TASKS = ["dp", "ner", "re", "sf", "id"]


def multitask_table() -> pa.Table:
    """Four sentences annotated for every task (row ``d`` only partly)."""
    return make_table(
        {
            "id": ["a", "b", "c", "d"],
            "tokens": [
                ["John", "lives", "in", "Paris", "."],
                ["Acme", "hired", "Mary"],
                ["Mary", "works", "for", "Acme", "in", "Rome"],
                ["hello"],
            ],
            "dp.head": [[2, 0, 4, 2, 2], [2, 0, 2], [2, 0, 4, 2, 6, 2], None],
            "dp.deprel": [
                ["nsubj", "root", "case", "obl", "punct"],
                ["nsubj", "root", "obj"],
                ["nsubj", "root", "case", "obl", "case", "obl"],
                None,
            ],
            "ner.tags": [
                ["B-PER", "O", "O", "B-LOC", "O"],
                ["B-ORG", "O", "B-PER"],
                ["B-PER", "O", "O", "B-ORG", "O", "B-LOC"],
                ["O"],
            ],
            "re.relations": [
                [{"head": 0, "tail": 1, "type": "Live_In"}],
                [{"head": 1, "tail": 0, "type": "Work_For"}],
                [
                    {"head": 0, "tail": 1, "type": "Work_For"},
                    {"head": 1, "tail": 2, "type": "Located_In"},
                ],
                None,
            ],
            "sf.tags": [
                ["B-who", "O", "O", "B-city", "O"],
                ["B-org", "O", "B-who"],
                ["B-who", "O", "O", "B-org", "O", "B-city"],
                ["O"],
            ],
            "id.label": ["live", "hire", "work", None],
        }
    )


def sf_id_table(n: int) -> pa.Table:
    """``n`` synthetic flight-booking utterances with slots and intents (deterministic)."""
    cities = ["boston", "denver", "dallas", "atlanta", "seattle", "miami"]
    ids, tokens, slots, intents = [], [], [], []
    for i in range(n):
        a, b = cities[i % 6], cities[(i * 5 + 1) % 6]
        if i % 2 == 0:
            words = ["show", "flights", "from", a, "to", b]
            tags = ["O", "O", "O", "B-fromloc", "O", "B-toloc"]
            intent = "flight"
        else:
            words = ["what", "is", "the", "fare", "to", b]
            tags = ["O", "O", "O", "O", "O", "B-toloc"]
            intent = "airfare"
        ids.append(f"u{i}")
        tokens.append(words)
        slots.append(tags)
        intents.append(intent)
    return make_table({"id": ids, "tokens": tokens, "sf.tags": slots, "id.label": intents})
