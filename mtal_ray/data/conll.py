"""The CoNLL column format (CoNLL-2003, WNUT, in-house NER/slot files) -> ``ner`` or ``sf``.

One token per line, columns separated by whitespace (spaces or tabs), a blank line between
sentences, ``-DOCSTART-`` lines skipped::

    -DOCSTART- -X- -X- O

    EU NNP B-NP B-ORG
    rejects VBZ B-VP O

By default the token is column 0 and the BIO tag the last column; ``columns`` (the config
key ``data.columns``) chooses others, e.g. ``{"token": 0, "ner": 3}`` or
``{"token": 1, "sf": -1}`` (negative = from the end; the tag key names the task, ``ner``
or ``sf``). A sentence whose tags are all ``_`` is not annotated (null). Rows get the ids
``<file stem>-<n>`` (1-based); the files carry no ids, so exported batches map back by
position.

The text of each sentence (with the ``-DOCSTART-`` and blank lines before it, its other
columns and its spacing) is kept in ``conll.raw``, so :func:`write_conll` reproduces the
file byte for byte; the tag column is re-inserted from ``ner.tags``/``sf.tags``. Sentences
without ``conll.raw`` are written as ``token<space>tag`` lines.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa

from mtal_ray.data.atomic import atomic_write_text
from mtal_ray.data.schema import make_table
from mtal_ray.data.spans import bio_errors
from mtal_ray.data.text import ReadReport, read_corpus_text, split_fields
from mtal_ray.errors import DataFormatError, MtalError

RAW_COLUMN = "conll.raw"
DOCSTART = "-DOCSTART-"
UNANNOTATED = "_"
#: Where the token and the tag are when ``data.columns`` is not set.
DEFAULT_COLUMNS: dict[str, int] = {"token": 0, "ner": -1}
#: Tasks a CoNLL file can carry (one of them per file).
CONLL_TASKS = ("ner", "sf")
#: Schema metadata key recording the columns a table was read with.
COLUMNS_METADATA = b"mtal.conll.columns"
_FIELD = re.compile(r"(\s+)")


def resolve_columns(columns: Mapping[str, int] | None) -> tuple[int, str, int]:
    """``(token column, task, tag column)`` of a ``data.columns`` mapping.

    Raises
    ------
    MtalError
        Naming ``data.columns`` for unknown keys, missing or several tag keys, non-integers.
    """
    given = dict(DEFAULT_COLUMNS if columns is None else columns)
    unknown = [k for k in given if k not in ("token", *CONLL_TASKS)]
    if unknown:
        raise MtalError(f"data.columns: unknown key {unknown[0]!r} (use token and one of ner, sf)")
    tag_keys = [k for k in CONLL_TASKS if k in given]
    if len(tag_keys) != 1:
        raise MtalError(
            "data.columns: give exactly one tag column, ner or sf "
            f"(got {', '.join(tag_keys) or 'none'})"
        )
    token = given.get("token", 0)
    tag = given[tag_keys[0]]
    for key, value in (("token", token), (tag_keys[0], tag)):
        if type(value) is not int:
            raise MtalError(f"data.columns.{key}: must be an integer column index, got {value!r}")
    if token == tag:
        raise MtalError(f"data.columns: token and {tag_keys[0]} are both column {token}")
    return token, tag_keys[0], tag


def is_separator(line: str) -> bool:
    """Blank lines and ``-DOCSTART-`` lines separate sentences."""
    stripped = line.strip()
    return not stripped or stripped.split()[0] == DOCSTART


def _index(value: int, n: int) -> int | None:
    index = value if value >= 0 else n + value
    return index if 0 <= index < n else None


def _parse_token(
    path: Path, lineno: int, line: str, token: int, tag: int, task: str
) -> tuple[str, str]:
    fields = split_fields(line)
    ti, gi = _index(token, len(fields)), _index(tag, len(fields))
    if ti is None or gi is None or ti == gi:
        raise DataFormatError(
            path,
            lineno,
            f"{len(fields)} column(s): the token (column {token}) and the {task} tag "
            f"(column {tag}) must be two different columns (see data.columns)",
        )
    return fields[ti], fields[gi]


def read_conll(
    path: str | Path,
    *,
    columns: Mapping[str, int] | None = None,
    strict_bio: bool = False,
    report: ReadReport | None = None,
) -> pa.Table:
    """Read a CoNLL column file into an example table (task ``ner`` or ``sf``).

    Parameters
    ----------
    path
        The file.
    columns
        ``{"token": i, "ner" | "sf": j}``; default ``{"token": 0, "ner": -1}``.
    strict_bio
        Refuse an ``I-`` tag that does not continue an entity of its type.
    report
        Filled with what was normalised (BOM, CRLF, a missing final newline).

    Raises
    ------
    DataFormatError
        Naming file and line: an empty file, a line without the configured columns, a tag
        that is not BIO, a sentence that mixes ``_`` with tags.
    """
    path = Path(path)
    token_col, task, tag_col = resolve_columns(columns)
    report = report if report is not None else ReadReport()
    text = read_corpus_text(path, report)
    if text and not text.endswith("\n"):
        report.normalised["missing_final_newline"] += 1
        text += "\n"
    lines = text.split("\n")[:-1]
    ids: list[str] = []
    tokens: list[list[str]] = []
    tags: list[list[str] | None] = []
    raws: list[str] = []
    sentence: list[tuple[int, str, str]] = []
    block_start = 0

    def finish(end: int) -> None:
        nonlocal block_start
        words = [w for _, w, _ in sentence]
        labels = [t for _, _, t in sentence]
        if all(t == UNANNOTATED for t in labels):
            row_tags = None
        else:
            for pos, message in bio_errors(labels):
                if strict_bio or "neither" in message:
                    lineno = sentence[pos][0]
                    if lines[lineno - 1].startswith("# "):  # "# sent_id = 3", "# text = ..."
                        message += (
                            " (a comment line? the conll format has none, '#' may be a token:"
                            " remove such lines, or give CoNLL-U as .conllu)"
                        )
                    raise DataFormatError(path, lineno, f"{task} {message}")
            row_tags = labels
        ids.append(f"{path.stem}-{len(ids) + 1}")
        tokens.append(words)
        tags.append(row_tags)
        raws.append("".join(line + "\n" for line in lines[block_start:end]))
        block_start = end
        sentence.clear()

    for index, line in enumerate(lines):
        if is_separator(line):
            if sentence:
                # A blank line closes the sentence's block; a -DOCSTART- opens the next one.
                finish(index + 1 if not line.strip() else index)
            continue
        sentence.append((index + 1, *_parse_token(path, index + 1, line, token_col, tag_col, task)))
    if sentence:
        finish(len(lines))
    if not ids:
        raise DataFormatError(path, None, "no sentences (the file is empty)")
    if block_start < len(lines):  # blank / -DOCSTART- lines after the last sentence
        raws[-1] += "".join(line + "\n" for line in lines[block_start:])
    table = make_table(
        {"id": ids, "tokens": tokens, f"{task}.tags": tags, RAW_COLUMN: raws},
        extra={RAW_COLUMN: pa.string()},
    )
    meta = {"token": token_col, task: tag_col}
    return table.replace_schema_metadata({COLUMNS_METADATA: json.dumps(meta).encode()})


def table_columns(table: pa.Table) -> dict[str, int] | None:
    """The ``columns`` a table was read with (kept in its schema metadata), if known."""
    meta = table.schema.metadata or {}
    if COLUMNS_METADATA not in meta:
        return None
    return dict(json.loads(meta[COLUMNS_METADATA]))


def _task_of(table: pa.Table, columns: Mapping[str, int] | None) -> str:
    if columns is not None:
        return resolve_columns(columns)[1]
    present = [t for t in CONLL_TASKS if f"{t}.tags" in table.column_names]
    if len(present) > 1:
        raise MtalError("a CoNLL file carries one tagging task; the table has both ner and sf")
    return present[0] if present else "ner"


def _retag(line: str, tag_col: int, tag: str) -> str:
    body = line.rstrip()
    trail = line[len(body) :]
    lead = body[: len(body) - len(body.lstrip())]
    parts = _FIELD.split(body.lstrip())  # fields at even positions, separators between
    index = _index(tag_col, (len(parts) + 1) // 2)
    assert index is not None
    parts[2 * index] = tag
    return lead + "".join(parts) + trail


def _canonical_width(token: int, tag: int) -> int:
    width = 2
    while True:
        ti, gi = _index(token, width), _index(tag, width)
        if ti is not None and gi is not None and ti != gi:
            return width
        width += 1


def _block(row: dict[str, object], task: str, token: int, tag: int) -> list[str]:
    """The lines (without newlines) of one row's block."""
    words = row["tokens"]
    row_tags = row.get(f"{task}.tags")
    assert isinstance(words, list)
    labels = [UNANNOTATED] * len(words) if row_tags is None else list(row_tags)  # type: ignore[call-overload]
    raw = row.get(RAW_COLUMN)
    if raw is None:
        for word in words:
            if not word or any(c.isspace() for c in word):
                raise MtalError(
                    f"sentence {row['id']!r}: the word {word!r} cannot be written to a CoNLL "
                    "file (columns there are separated by whitespace)"
                )
        width = _canonical_width(token, tag)
        out = []
        for word, label in zip(words, labels, strict=True):
            fields = [UNANNOTATED] * width
            fields[_index(token, width)] = word  # type: ignore[index]
            fields[_index(tag, width)] = label  # type: ignore[index]
            out.append(" ".join(fields))
        return [*out, ""]
    lines = str(raw).split("\n")[:-1]
    position = 0
    out = []
    for line in lines:
        if is_separator(line):
            out.append(line)
            continue
        out.append(_retag(line, tag, labels[position]))
        position += 1
    return out


def format_conll(table: pa.Table, columns: Mapping[str, int] | None = None) -> str:
    """The CoNLL text of an example table (``columns`` default: those it was read with)."""
    columns = columns if columns is not None else table_columns(table)
    task = _task_of(table, columns)
    if columns is None:
        columns = {"token": 0, task: -1}
    token, _, tag = resolve_columns(columns)
    out: list[str] = []
    for row in table.to_pylist():
        lines = _block(row, task, token, tag)
        if out and lines and not is_separator(out[-1]) and not is_separator(lines[0]):
            out.append("")  # keep rows apart when a subset or reordering joins two sentences
        out.extend(lines)
    return "".join(line + "\n" for line in out)


def write_conll(
    table: pa.Table, path: str | Path, columns: Mapping[str, int] | None = None
) -> None:
    """Write ``table`` as a CoNLL column file atomically (null tags are written as ``_``)."""
    atomic_write_text(Path(path), format_conll(table, columns))


def row_lines(table: pa.Table) -> list[int]:
    """Line of each row's first token in the file :func:`format_conll` writes (for messages)."""
    result = []
    current = 1
    previous_last: str | None = None
    raws = (
        table.column(RAW_COLUMN).to_pylist()
        if RAW_COLUMN in table.column_names
        else [None] * table.num_rows
    )
    for raw, words in zip(raws, table.column("tokens").to_pylist(), strict=True):
        lines = [*words, ""] if raw is None else str(raw).split("\n")[:-1]
        if (
            previous_last is not None
            and lines
            and not is_separator(previous_last)
            and not is_separator(lines[0])
        ):
            current += 1
        lead = next((i for i, line in enumerate(lines) if not is_separator(line)), 0)
        result.append(current + lead)
        current += len(lines)
        previous_last = lines[-1] if lines else previous_last
    return result
