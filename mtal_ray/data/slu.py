"""The ATIS/SNIPS folder layout -> tasks ``sf`` (BIO slots) and ``id`` (intent).

A split is a folder with three line-aligned files: ``seq.in`` (words separated by
spaces), ``seq.out`` (one BIO slot tag per word) and ``label`` (the intent; multi-intents
such as ``atis_flight#atis_airfare`` are kept as one label). Row ``i`` gets the id
``<folder name>-<i>``. A line of ``seq.out`` or ``label`` that is exactly ``_`` marks the
utterance as not annotated for that task (how partially annotated splits are written).

The reader is as tolerant as the tools this layout is shared with: words and tags are
separated by runs of whitespace (spaces or tabs), and trailing whitespace, CRLF line ends
and a byte-order mark are accepted. What was accepted that way is counted in the
:class:`~mtal_ray.data.text.ReadReport`; the writer always writes the canonical form
(single spaces, LF, no BOM), so canonical files round-trip byte for byte.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from mtal_ray.data.atomic import atomic_write_many
from mtal_ray.data.schema import make_table
from mtal_ray.data.spans import bio_errors
from mtal_ray.data.text import ReadReport, read_corpus_text, split_blanks, split_lines
from mtal_ray.errors import DataFormatError, MtalError

#: The three line-aligned files of a split folder: words, slot tags, intents.
WORDS_FILE, SLOTS_FILE, INTENT_FILE = "seq.in", "seq.out", "label"
FILES = (WORDS_FILE, SLOTS_FILE, INTENT_FILE)
#: The file that holds each task's annotation.
TASK_FILES: dict[str, str] = {"sf": SLOTS_FILE, "id": INTENT_FILE}
UNANNOTATED = "_"


def is_slu_folder(path: Path) -> bool:
    """Whether ``path`` is a folder holding ``seq.in``, ``seq.out`` and ``label``."""
    return path.is_dir() and all((path / name).is_file() for name in FILES)


def _read_lines(path: Path, report: ReadReport) -> list[str]:
    return split_lines(read_corpus_text(path, report))


def _fields(line: str, report: ReadReport) -> list[str]:
    """The whitespace-separated fields of ``line``, counting what was not canonical."""
    fields = split_blanks(line)
    stripped = line.rstrip(" \t")
    if stripped != line:
        report.normalised["trailing_whitespace"] += 1
    if " ".join(fields) != stripped:
        report.normalised["whitespace_runs"] += 1
    return fields


def read_slu(
    folder: str | Path, *, strict_bio: bool = False, report: ReadReport | None = None
) -> pa.Table:
    """Read one split folder (``seq.in``/``seq.out``/``label``) into an example table.

    Parameters
    ----------
    folder
        The split folder.
    strict_bio
        Refuse an ``I-`` tag that does not continue a slot of its type.
    report
        Filled with what was normalised (BOM, CRLF, trailing whitespace, whitespace runs).

    Raises
    ------
    DataFormatError
        When a file is missing, the folder holds no utterance, the three files differ in
        line count, or a line of ``seq.out`` has a different number of tags than its
        ``seq.in`` line.
    """
    folder = Path(folder)
    report = report if report is not None else ReadReport()
    for name in FILES:
        if not (folder / name).is_file():
            raise DataFormatError(folder / name, None, "file missing (need seq.in, seq.out, label)")
    words, slots, labels = (_read_lines(folder / name, report) for name in FILES)
    if not words and not slots and not labels:
        raise DataFormatError(folder / WORDS_FILE, None, "no utterances (the file is empty)")
    if not len(words) == len(slots) == len(labels):
        raise DataFormatError(
            folder,
            min(len(words), len(slots), len(labels)) + 1,
            f"line counts differ: seq.in {len(words)}, seq.out {len(slots)}, label {len(labels)}",
        )
    ids, tokens, sf, intents = [], [], [], []
    for i, (w_line, s_line, label) in enumerate(zip(words, slots, labels, strict=True)):
        lineno = i + 1
        toks = _fields(w_line, report)
        if not toks:
            raise DataFormatError(
                folder / WORDS_FILE, lineno, "blank line (an utterance needs words)"
            )
        tags: list[str] | None = _fields(s_line, report)
        if tags == [UNANNOTATED]:
            tags = None
        else:
            assert tags is not None
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
        if label != label.rstrip():
            report.normalised["trailing_whitespace"] += 1
        if label != label.lstrip():  # " atis_flight" is atis_flight, not an intent of its own
            report.normalised["whitespace_runs"] += 1
        label = label.strip()
        ids.append(f"{folder.name}-{i}")
        tokens.append(toks)
        sf.append(tags)
        intents.append(None if label == UNANNOTATED else label)
    return make_table({"id": ids, "tokens": tokens, "sf.tags": sf, "id.label": intents})


def format_slu(table: pa.Table) -> dict[str, str]:
    """The canonical text of the three files (file name -> text) of an example table."""
    n = table.num_rows
    tokens = table.column("tokens").to_pylist()
    tags = table.column("sf.tags").to_pylist() if "sf.tags" in table.column_names else [None] * n
    labels = (
        table.column("id.label").to_pylist() if "id.label" in table.column_names else [None] * n
    )
    for sid, words in zip(table.column("id").to_pylist(), tokens, strict=True):
        for word in words:
            if not word or any(c.isspace() for c in word):
                raise MtalError(
                    f"sentence {sid!r}: the word {word!r} cannot be written to {WORDS_FILE} "
                    "(words there are separated by whitespace)"
                )
    seq_in = "".join(" ".join(t) + "\n" for t in tokens)
    seq_out = "".join((UNANNOTATED if t is None else " ".join(t)) + "\n" for t in tags)
    label = "".join((UNANNOTATED if x is None else x) + "\n" for x in labels)
    return {WORDS_FILE: seq_in, SLOTS_FILE: seq_out, INTENT_FILE: label}


def write_slu(table: pa.Table, folder: str | Path) -> None:
    """Write ``table`` as a split folder; the three files are replaced together or not at all."""
    folder = Path(folder)
    atomic_write_many({folder / name: text for name, text in format_slu(table).items()})
