"""The ATIS/SNIPS folder layout -> tasks ``sf`` (BIO slots) and ``id`` (intent).

A split is a folder with three line-aligned files: ``seq.in`` (words separated by
spaces), ``seq.out`` (one BIO slot tag per word) and ``label`` (the intent; multi-intents
such as ``atis_flight#atis_airfare`` are kept as one label). Row ``i`` gets the id
``<folder name>-<i>``. A line of ``seq.out`` or ``label`` that is exactly ``_`` marks the
utterance as not annotated for that task (how partially annotated splits are written).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from mtal_ray.data.atomic import atomic_write_many
from mtal_ray.data.schema import make_table
from mtal_ray.data.spans import bio_errors
from mtal_ray.errors import DataFormatError

#: The three line-aligned files of a split folder: words, slot tags, intents.
WORDS_FILE, SLOTS_FILE, INTENT_FILE = "seq.in", "seq.out", "label"
FILES = (WORDS_FILE, SLOTS_FILE, INTENT_FILE)
#: The file that holds each task's annotation.
TASK_FILES: dict[str, str] = {"sf": SLOTS_FILE, "id": INTENT_FILE}
UNANNOTATED = "_"


def is_slu_folder(path: Path) -> bool:
    """Whether ``path`` is a folder holding ``seq.in``, ``seq.out`` and ``label``."""
    return path.is_dir() and all((path / name).is_file() for name in FILES)


def _read_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DataFormatError(path, None, f"cannot read file: {err}") from err
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def read_slu(folder: str | Path, *, strict_bio: bool = False) -> pa.Table:
    """Read one split folder (``seq.in``/``seq.out``/``label``) into an example table.

    Raises
    ------
    DataFormatError
        When a file is missing, the three files differ in line count, or a line of
        ``seq.out`` has a different number of tags than its ``seq.in`` line.
    """
    folder = Path(folder)
    for name in FILES:
        if not (folder / name).is_file():
            raise DataFormatError(folder / name, None, "file missing (need seq.in, seq.out, label)")
    words, slots, labels = (_read_lines(folder / name) for name in FILES)
    if not len(words) == len(slots) == len(labels):
        raise DataFormatError(
            folder,
            min(len(words), len(slots), len(labels)) + 1,
            f"line counts differ: seq.in {len(words)}, seq.out {len(slots)}, label {len(labels)}",
        )
    ids, tokens, sf, intents = [], [], [], []
    for i, (w_line, s_line, label) in enumerate(zip(words, slots, labels, strict=True)):
        lineno = i + 1
        toks = w_line.split(" ")
        if w_line.strip() == "" or any(t == "" for t in toks):
            raise DataFormatError(
                folder / WORDS_FILE, lineno, "empty word (blank line or double space)"
            )
        if s_line == UNANNOTATED:
            tags = None
        else:
            tags = s_line.split(" ")
            if len(tags) != len(toks):
                raise DataFormatError(
                    folder / SLOTS_FILE,
                    lineno,
                    f"{len(tags)} slot tags for {len(toks)} words in seq.in",
                )
            for pos, message in bio_errors(tags):
                if strict_bio or "neither" in message:
                    raise DataFormatError(folder / SLOTS_FILE, lineno, f"word {pos + 1}: {message}")
        if label.strip() == "":
            raise DataFormatError(folder / INTENT_FILE, lineno, "empty intent label")
        ids.append(f"{folder.name}-{i}")
        tokens.append(toks)
        sf.append(tags)
        intents.append(None if label == UNANNOTATED else label)
    return make_table({"id": ids, "tokens": tokens, "sf.tags": sf, "id.label": intents})


def write_slu(table: pa.Table, folder: str | Path) -> None:
    """Write ``table`` as a split folder; the three files are replaced together or not at all."""
    folder = Path(folder)
    n = table.num_rows
    tokens = table.column("tokens").to_pylist()
    tags = table.column("sf.tags").to_pylist() if "sf.tags" in table.column_names else [None] * n
    labels = (
        table.column("id.label").to_pylist() if "id.label" in table.column_names else [None] * n
    )
    seq_in = "".join(" ".join(t) + "\n" for t in tokens)
    seq_out = "".join((UNANNOTATED if t is None else " ".join(t)) + "\n" for t in tags)
    label = "".join((UNANNOTATED if x is None else x) + "\n" for x in labels)
    atomic_write_many(
        {folder / WORDS_FILE: seq_in, folder / SLOTS_FILE: seq_out, folder / INTENT_FILE: label}
    )
