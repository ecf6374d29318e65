"""CoNLL-U with the NER tag in MISC (``NER=B-PER``) -> tasks ``dp`` and ``ner``.

Reading follows the CoNLL-U rules: sentences are separated by blank lines, comment lines
start with ``#``, word lines have 10 tab-separated columns with integer IDs 1..n,
multiword-token range lines (``3-4``) and empty nodes (``8.1``) are kept for writing but
are not words (IDs must be ASCII: ``n``, ``n-m`` with n<m, ``n.k``; anything else is an
error). HEAD (col. 7) and DEPREL (col. 8) give ``dp``; the ``NER=`` attribute of
MISC (col. 10) gives ``ner``. A sentence whose HEADs are all ``_`` (or that has no NER
attribute at all) is unannotated for that task (null), which is how partially annotated
files are written back. An annotated ``dp`` sentence must be a tree: exactly one root, no
self-loops, no cycles, every HEAD in range (the error names file, line and sentence id).

The original sentence block is kept in ``conllu.raw`` so that :func:`write_conllu`
reproduces each sentence byte for byte (comments, ranges, empty nodes, every column);
between sentences it writes the canonical one blank line, and a BOM, CRLF line ends and
whitespace after a word line's last column are not written back. HEAD, DEPREL and NER are
re-inserted from the task columns, so edited or predicted labels are what gets written.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa

from mtal_ray.data.atomic import atomic_write_text
from mtal_ray.data.schema import make_table
from mtal_ray.data.spans import bio_errors
from mtal_ray.data.text import ReadReport, read_corpus_text, split_lines
from mtal_ray.errors import DataFormatError

RAW_COLUMN = "conllu.raw"
_NER_KEY = "NER="
_WORD_ID = re.compile(r"[1-9][0-9]*")
_RANGE_ID = re.compile(r"([1-9][0-9]*)-([1-9][0-9]*)")
_EMPTY_ID = re.compile(r"(?:0|[1-9][0-9]*)\.[1-9][0-9]*")
_HEAD = re.compile(r"-?[0-9]+")


def is_word_line_id(text: str) -> bool:
    """Whether ``text`` is a valid CoNLL-U ID (``n``, ``n-m`` with n<m, or ``n.k``)."""
    if _WORD_ID.fullmatch(text) or _EMPTY_ID.fullmatch(text):
        return True
    match = _RANGE_ID.fullmatch(text)
    return match is not None and int(match[1]) < int(match[2])


def tree_problem(heads: Sequence[int]) -> tuple[int, str] | None:
    """The first reason ``heads`` (1-based, 0 = root) is not a dependency tree, or ``None``.

    Returns the 0-based index of the word to point at and a message. Checked in order:
    self-loops, more than one root, cycles (a cycle also means some words never reach
    the root), no root.

    >>> tree_problem([2, 0, 2]) is None
    True
    >>> tree_problem([2, 1, 0])
    (0, 'words 1 -> 2 -> 1 form a cycle (they never reach the root)')
    """
    n = len(heads)
    for i, head in enumerate(heads):
        if head == i + 1:
            return i, f"word {i + 1} is its own head (self-loop)"
        if not 0 <= head <= n:
            return i, f"HEAD {head} out of range 0..{n} for this sentence"
    roots = [i for i, head in enumerate(heads) if head == 0]
    if len(roots) > 1:
        listed = ", ".join(str(i + 1) for i in roots)
        return roots[1], f"{len(roots)} roots (words {listed}); a tree has exactly one"
    state = [0] * n  # 0 = not seen, 1 = on the current path, 2 = reaches the root
    for start in range(n):
        path: list[int] = []
        v = start
        while v >= 0 and state[v] == 0:
            state[v] = 1
            path.append(v)
            v = heads[v] - 1
        if v >= 0 and state[v] == 1:
            cycle = path[path.index(v) :]
            first = min(cycle)
            walk = [first]
            while heads[walk[-1]] - 1 != first:
                walk.append(heads[walk[-1]] - 1)
            shown = " -> ".join(str(w + 1) for w in [*walk, first])
            return first, f"words {shown} form a cycle (they never reach the root)"
        for u in path:
            state[u] = 2
    if not roots:
        return 0, "no root (no word has HEAD 0)"
    return None


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
        if _EMPTY_ID.fullmatch(word_id):
            continue  # empty node: not a word
        if match := _RANGE_ID.fullmatch(word_id):
            if int(match[1]) >= int(match[2]):
                raise DataFormatError(
                    path, lineno, f"invalid range ID {word_id!r} (n-m needs n < m)"
                )
            continue  # multiword-token range: not a word
        if not _WORD_ID.fullmatch(word_id):
            raise DataFormatError(
                path,
                lineno,
                f"invalid ID {word_id!r} (expected a word number 1, 2, ..., "
                "a range n-m with n < m, or an empty node n.k)",
            )
        if int(word_id) != len(tokens) + 1:
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
            if not _HEAD.fullmatch(head):
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
        problem = tree_problem(dp_head)
        if problem is not None:
            pos, message = problem
            shown = sent_id if sent_id else f"{path.stem}-{index + 1}"
            raise DataFormatError(path, word_lines[pos], f"sentence {shown!r}: {message}")
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


def read_conllu(
    path: str | Path, *, strict_bio: bool = False, report: ReadReport | None = None
) -> pa.Table:
    """Read a CoNLL-U file into an example table (tasks ``dp`` and ``ner``).

    Parameters
    ----------
    path
        The ``.conllu`` file.
    strict_bio
        Refuse an ``I-`` tag that does not continue an entity of its type.
    report
        Filled with what was normalised (a BOM, CRLF line ends, whitespace after a word
        line's last column, a missing final newline).

    Raises
    ------
    DataFormatError
        Naming the file and line of the first problem (an empty file is one).
    """
    path = Path(path)
    report = report if report is not None else ReadReport()
    text = read_corpus_text(path, report)
    if text and not text.endswith("\n"):
        report.normalised["missing_final_newline"] += 1
    rows: list[dict[str, object]] = []
    block: list[tuple[int, str]] = []
    for lineno, line in enumerate(split_lines(text), start=1):
        if line.strip() == "":
            if block:
                rows.append(_parse_block(path, block, len(rows), strict_bio))
                block = []
            continue
        if not line.startswith("#") and line != (bare := line.rstrip(" \t")):
            report.normalised["trailing_whitespace"] += 1  # after MISC, e.g. "NER=O "
            line = bare
        block.append((lineno, line))
    if block:
        rows.append(_parse_block(path, block, len(rows), strict_bio))
    if not rows:
        raise DataFormatError(path, None, "no sentences (the file is empty)")
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
