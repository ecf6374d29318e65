"""CoNLL-U with the NER tag in MISC (``NER=B-PER``) -> tasks ``dp`` and ``ner``.

Reading follows the CoNLL-U rules: sentences are separated by blank lines, comment lines
start with ``#``, word lines have 10 tab-separated columns with integer IDs 1..n,
multiword-token range lines (``3-4``) and empty nodes (``8.1``) are kept for writing but
are not words. HEAD (col. 7) and DEPREL (col. 8) give ``dp``; the ``NER=`` attribute of
MISC (col. 10) gives ``ner``. A sentence whose HEADs are all ``_`` (or that has no NER
attribute at all) is unannotated for that task (null), which is how partially annotated
files are written back.

The original sentence block is kept in ``conllu.raw`` so that :func:`write_conllu`
reproduces the file byte for byte; HEAD, DEPREL and NER are re-inserted from the task
columns, so edited or predicted labels are what gets written.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from mtal_ray.data.atomic import atomic_write_text
from mtal_ray.data.schema import make_table
from mtal_ray.data.spans import bio_errors
from mtal_ray.errors import DataFormatError

RAW_COLUMN = "conllu.raw"
_NER_KEY = "NER="


def _misc_ner(misc: str) -> str | None:
    if misc == "_":
        return None
    for attr in misc.split("|"):
        if attr.startswith(_NER_KEY):
            return attr[len(_NER_KEY) :]
    return None


def _misc_with_ner(misc: str, tag: str | None) -> str:
    attrs = [] if misc == "_" else misc.split("|")
    index = next((i for i, a in enumerate(attrs) if a.startswith(_NER_KEY)), None)
    if tag is None:
        if index is not None:
            del attrs[index]
    elif index is None:
        attrs.append(_NER_KEY + tag)
    else:
        attrs[index] = _NER_KEY + tag
    return "|".join(attrs) if attrs else "_"


def _parse_block(
    path: Path, lines: list[tuple[int, str]], index: int, strict_bio: bool
) -> dict[str, object]:
    sent_id = None
    tokens: list[str] = []
    heads: list[str] = []
    deprels: list[str] = []
    ner: list[str | None] = []
    word_lines: list[int] = []
    for lineno, line in lines:
        if line.startswith("#"):
            key, sep, value = line[1:].partition("=")
            if sep and key.strip() == "sent_id":
                sent_id = value.strip()
            continue
        cols = line.split("\t")
        if len(cols) != 10:
            raise DataFormatError(
                path, lineno, f"expected 10 tab-separated columns, found {len(cols)}"
            )
        word_id = cols[0]
        if "-" in word_id or "." in word_id:
            continue  # multiword-token range or empty node: not a word
        if not word_id.isdigit() or int(word_id) != len(tokens) + 1:
            raise DataFormatError(
                path, lineno, f"word ID {word_id!r} out of sequence (expected {len(tokens) + 1})"
            )
        tokens.append(cols[1])
        heads.append(cols[6])
        deprels.append(cols[7])
        ner.append(_misc_ner(cols[9]))
        word_lines.append(lineno)
    first_line = lines[0][0]
    if not tokens:
        raise DataFormatError(path, first_line, "sentence has no word lines")
    n = len(tokens)
    if all(h == "_" for h in heads):
        dp_head, dp_deprel = None, None
    else:
        dp_head = []
        for lineno, head in zip(word_lines, heads, strict=True):
            if not head.lstrip("-").isdigit():
                raise DataFormatError(path, lineno, f"HEAD {head!r} is not an integer")
            value = int(head)
            if not 0 <= value <= n:
                raise DataFormatError(
                    path, lineno, f"HEAD {value} out of range 0..{n} for this sentence"
                )
            dp_head.append(value)
        for lineno, rel in zip(word_lines, deprels, strict=True):
            if rel == "_" or not rel:
                raise DataFormatError(path, lineno, "DEPREL missing on a word with a HEAD")
        dp_deprel = deprels
    if all(tag is None for tag in ner):
        ner_tags = None
    else:
        for lineno, tag in zip(word_lines, ner, strict=True):
            if tag is None:
                raise DataFormatError(path, lineno, "token has no NER= tag in MISC")
        ner_tags = [t for t in ner if t is not None]
        problems = bio_errors(ner_tags)
        for pos, message in problems:
            if strict_bio or "neither" in message:
                raise DataFormatError(path, word_lines[pos], f"NER {message}")
    return {
        "id": sent_id if sent_id else f"{path.stem}-{index + 1}",
        "tokens": tokens,
        "dp.head": dp_head,
        "dp.deprel": dp_deprel,
        "ner.tags": ner_tags,
        RAW_COLUMN: "\n".join(line for _, line in lines),
        "_line": first_line,
    }


def read_conllu(path: str | Path, *, strict_bio: bool = False) -> pa.Table:
    """Read a CoNLL-U file into an example table (tasks ``dp`` and ``ner``).

    Parameters
    ----------
    path
        The ``.conllu`` file.
    strict_bio
        Refuse an ``I-`` tag that does not continue an entity of its type.

    Raises
    ------
    DataFormatError
        Naming the file and line of the first problem.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DataFormatError(path, None, f"cannot read file: {err}") from err
    rows: list[dict[str, object]] = []
    block: list[tuple[int, str]] = []
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for lineno, line in enumerate(lines, start=1):
        if line.strip() == "":
            if block:
                rows.append(_parse_block(path, block, len(rows), strict_bio))
                block = []
            continue
        block.append((lineno, line.rstrip("\r")))
    if block:
        rows.append(_parse_block(path, block, len(rows), strict_bio))
    seen: dict[str, int] = {}
    for row in rows:
        sid = str(row["id"])
        if sid in seen:
            raise DataFormatError(
                path, row["_line"], f"duplicate sent_id {sid!r} (first at line {seen[sid]})"
            )
        seen[sid] = int(row["_line"])  # type: ignore[arg-type]
    columns = ["id", "tokens", "dp.head", "dp.deprel", "ner.tags", RAW_COLUMN]
    return make_table({c: [r[c] for r in rows] for c in columns}, extra={RAW_COLUMN: pa.string()})


def _sentence_lines(row: dict[str, object]) -> list[str]:
    tokens = row["tokens"]
    heads = row.get("dp.head")
    rels = row.get("dp.deprel")
    tags = row.get("ner.tags")
    raw = row.get(RAW_COLUMN)
    if raw is None:
        lines = [f"# sent_id = {row['id']}", "# text = " + " ".join(tokens)]  # type: ignore[arg-type]
        lines += [f"{i}\t{tok}\t_\t_\t_\t_\t_\t_\t_\t_" for i, tok in enumerate(tokens, 1)]  # type: ignore[arg-type]
    else:
        lines = str(raw).split("\n")
    out = []
    word = 0
    for line in lines:
        cols = line.split("\t")
        if line.startswith("#") or len(cols) != 10 or "-" in cols[0] or "." in cols[0]:
            out.append(line)
            continue
        cols[6] = "_" if heads is None else str(heads[word])  # type: ignore[index]
        cols[7] = "_" if rels is None else str(rels[word])  # type: ignore[index]
        cols[9] = _misc_with_ner(cols[9], None if tags is None else tags[word])  # type: ignore[index]
        out.append("\t".join(cols))
        word += 1
    return out


def format_conllu(table: pa.Table) -> str:
    """The CoNLL-U text of an example table (one block per row, blank line after each)."""
    parts = []
    for row in table.to_pylist():
        parts.append("\n".join(_sentence_lines(row)) + "\n\n")
    return "".join(parts)


def write_conllu(table: pa.Table, path: str | Path) -> None:
    """Write ``table`` as CoNLL-U atomically (tasks ``dp``/``ner``; null = ``_`` / no NER)."""
    atomic_write_text(Path(path), format_conllu(table))
