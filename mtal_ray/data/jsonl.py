"""JSON lines with entity spans and relations -> tasks ``ner`` and ``re``.

One sentence per line::

    {"id": "s1", "tokens": [...], "entities": [{"start": 0, "end": 2, "type": "Peop"}],
     "relations": [{"head": 0, "tail": 1, "type": "Work_For"}]}

``end`` is exclusive; ``head``/``tail`` index ``entities``. Offsets and indices are JSON
integers (``0.9``, ``true``, ``"3"`` or ``Infinity`` are errors), a relation links two
different entities, and duplicate entities or relations are errors. Entities are stored as
BIO tags in ``ner.tags`` and relations refer to entity spans in order of their start, which
is the file's own order whenever the file lists entities by start. Overlapping (nested)
mentions cannot be BIO tags: by default they are an error; ``overlapping_entities=
"keep-longest"`` / ``"keep-shortest"`` keeps one of them (see
:func:`~mtal_ray.data.spans.resolve_overlaps`) and drops the relations that used a dropped
mention, counting both in the :class:`~mtal_ray.data.text.ReadReport`.
A line without ``entities`` (``relations``) is not annotated for ``ner`` (``re``).
Other keys are kept in ``jsonl.extra`` and written back after the standard ones.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa

from mtal_ray.data.atomic import atomic_write_text
from mtal_ray.data.schema import make_table
from mtal_ray.data.spans import (
    OVERLAP_POLICIES,
    bio_to_spans,
    first_overlap,
    resolve_overlaps,
    spans_to_bio,
)
from mtal_ray.data.text import ReadReport, read_corpus_text
from mtal_ray.errors import DataFormatError, MtalError

EXTRA_COLUMN = "jsonl.extra"
_STANDARD_KEYS = ("id", "tokens", "entities", "relations")


def _integer(path: Path, lineno: int, what: str, obj: dict[str, Any], key: str) -> int:
    value = obj[key]
    if type(value) is not int:  # bool is an int subclass: refused too
        raise DataFormatError(
            path, lineno, f"{what} {key!r} must be an integer, got {json.dumps(value)}"
        )
    return value


def _label(path: Path, lineno: int, what: str, obj: dict[str, Any]) -> str:
    kind = obj["type"]
    if not isinstance(kind, str) or not kind or any(c.isspace() for c in kind):
        raise DataFormatError(path, lineno, f"{what} has an invalid type {json.dumps(kind)}")
    return kind


def _record(path: Path, lineno: int, what: str, obj: Any, keys: tuple[str, ...]) -> None:
    if not isinstance(obj, dict) or any(k not in obj for k in keys):
        listed = ", ".join(repr(k) for k in keys)
        raise DataFormatError(path, lineno, f"{what} must be an object with {listed}")


def _entities(
    path: Path, lineno: int, n: int, entities: Any, policy: str
) -> tuple[list[str], list[int | None]]:
    """BIO tags of the kept entities and, per original entity, its index in start order
    among the kept ones (``None`` when the overlap policy dropped it)."""
    if not isinstance(entities, list):
        raise DataFormatError(path, lineno, "'entities' must be a list")
    spans: list[tuple[int, int, str]] = []
    seen: dict[tuple[int, int, str], int] = {}
    for k, ent in enumerate(entities):
        what = f"entity {k}"
        _record(path, lineno, what, ent, ("start", "end", "type"))
        start = _integer(path, lineno, what, ent, "start")
        end = _integer(path, lineno, what, ent, "end")
        kind = _label(path, lineno, what, ent)
        if not 0 <= start < end <= n:
            raise DataFormatError(
                path, lineno, f"entity {k} span [{start}, {end}) out of range for {n} tokens"
            )
        span = (start, end, kind)
        if span in seen:
            raise DataFormatError(
                path,
                lineno,
                f"entities {seen[span]} and {k} are duplicates ([{start}, {end}) {kind!r})",
            )
        seen[span] = k
        spans.append(span)
    if policy == "error" and (pair := first_overlap(spans)) is not None:
        a, b = pair
        (s1, e1, t1), (s2, e2, t2) = spans[a], spans[b]
        raise DataFormatError(
            path,
            lineno,
            f"entities {a} and {b} overlap: [{s1}, {e1}) {t1!r} and [{s2}, {e2}) {t2!r} "
            "(nested or overlapping mentions: set data.overlapping_entities / "
            "--overlapping-entities to keep-longest or keep-shortest)",
        )
    kept = resolve_overlaps(spans, policy)
    rank: list[int | None] = [None] * len(spans)
    for position, i in enumerate(kept):
        rank[i] = position
    tags = spans_to_bio(n, [spans[i] for i in kept])
    return tags, rank


def _check_surrogates(path: Path, lineno: int, obj: dict[str, Any]) -> None:
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as err:
        bad = err.object[err.start : err.end]
        escape = "".join(f"\\u{ord(c):04x}" for c in bad)
        raise DataFormatError(
            path,
            lineno,
            f"invalid string: a lone surrogate escape {escape} (half of an emoji or other "
            "character cut in two) is not text; remove it or escape the whole pair",
        ) from None


def read_jsonl(
    path: str | Path,
    *,
    overlapping_entities: str = "error",
    report: ReadReport | None = None,
) -> pa.Table:
    """Read a JSON-lines file into an example table (tasks ``ner`` and ``re``).

    Parameters
    ----------
    path
        The ``.json``/``.jsonl`` file.
    overlapping_entities
        ``error`` (default), ``keep-longest`` or ``keep-shortest``.
    report
        Filled with what was normalised (BOM, CRLF) and the dropped entities/relations.

    Raises
    ------
    DataFormatError
        Naming file and line: an empty file, invalid JSON, missing tokens, an offset that
        is not an integer, a span out of range, overlapping (under ``error``) or given
        twice, a relation that points at a missing entity, links an entity to itself or
        is given twice, a duplicate id.
    """
    if overlapping_entities not in OVERLAP_POLICIES:
        raise MtalError(
            f"unknown overlapping-entities policy {overlapping_entities!r} "
            f"(choose from {', '.join(OVERLAP_POLICIES)})"
        )
    path = Path(path)
    report = report if report is not None else ReadReport()
    text = read_corpus_text(path, report)
    cols: dict[str, list[Any]] = {
        "id": [],
        "tokens": [],
        "ner.tags": [],
        "re.relations": [],
        EXTRA_COLUMN: [],
    }
    seen: dict[str, int] = {}
    for lineno, line in enumerate(text.split("\n"), start=1):
        if line.strip() == "":
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataFormatError(path, lineno, f"invalid JSON: {err.msg}") from err
        if not isinstance(obj, dict):
            raise DataFormatError(path, lineno, "each line must be a JSON object")
        if "\\ud" in line.lower():  # only a \uD800-\uDFFF escape can give a lone surrogate
            _check_surrogates(path, lineno, obj)
        tokens = obj.get("tokens")
        if (
            not isinstance(tokens, list)
            or not tokens
            or not all(isinstance(t, str) for t in tokens)
        ):
            raise DataFormatError(path, lineno, "'tokens' must be a non-empty list of strings")
        if "id" in obj and (isinstance(obj["id"], bool) or not isinstance(obj["id"], str | int)):
            raise DataFormatError(
                path, lineno, f"'id' must be a string or an integer, got {json.dumps(obj['id'])}"
            )
        sid = str(obj["id"]) if "id" in obj else f"{path.stem}-{len(cols['id'])}"
        if sid in seen:
            raise DataFormatError(path, lineno, f"duplicate id {sid!r} (first at line {seen[sid]})")
        seen[sid] = lineno
        tags, rank = (
            (None, [])
            if "entities" not in obj
            else _entities(path, lineno, len(tokens), obj["entities"], overlapping_entities)
        )
        report.dropped_entities += sum(r is None for r in rank)
        relations = None
        if "relations" in obj:
            if not isinstance(obj["relations"], list):
                raise DataFormatError(path, lineno, "'relations' must be a list")
            relations = []
            given: dict[tuple[int, int, str], int] = {}
            for k, rel in enumerate(obj["relations"]):
                what = f"relation {k}"
                _record(path, lineno, what, rel, ("head", "tail", "type"))
                head = _integer(path, lineno, what, rel, "head")
                tail = _integer(path, lineno, what, rel, "tail")
                kind = _label(path, lineno, what, rel)
                for role, value in (("head", head), ("tail", tail)):
                    if not 0 <= value < len(rank):
                        raise DataFormatError(
                            path,
                            lineno,
                            f"relation {k} {role} {value} points at a missing entity "
                            f"(the line has {len(rank)} entities)",
                        )
                if head == tail:
                    raise DataFormatError(
                        path, lineno, f"relation {k} links entity {head} to itself"
                    )
                if (head, tail, kind) in given:
                    raise DataFormatError(
                        path,
                        lineno,
                        f"relations {given[head, tail, kind]} and {k} are duplicates "
                        f"({head} -> {tail} {kind!r})",
                    )
                given[head, tail, kind] = k
                head_rank, tail_rank = rank[head], rank[tail]
                if head_rank is None or tail_rank is None:
                    report.dropped_relations += 1
                    continue
                relations.append({"head": head_rank, "tail": tail_rank, "type": kind})
        extra = {k: v for k, v in obj.items() if k not in _STANDARD_KEYS}
        cols["id"].append(sid)
        cols["tokens"].append(tokens)
        cols["ner.tags"].append(tags)
        cols["re.relations"].append(relations)
        cols[EXTRA_COLUMN].append(json.dumps(extra) if extra else None)
    if not cols["id"]:
        raise DataFormatError(path, None, "no sentences (the file is empty)")
    return make_table(cols, extra={EXTRA_COLUMN: pa.string()})


def format_jsonl(table: pa.Table) -> str:
    """The JSON-lines text of an example table."""
    out = []
    for row in table.to_pylist():
        obj: dict[str, Any] = {"id": row["id"], "tokens": row["tokens"]}
        tags = row.get("ner.tags")
        if tags is not None:
            obj["entities"] = [{"start": s, "end": e, "type": t} for s, e, t in bio_to_spans(tags)]
        relations = row.get("re.relations")
        if relations is not None:
            obj["relations"] = [
                {"head": r["head"], "tail": r["tail"], "type": r["type"]} for r in relations
            ]
        if row.get(EXTRA_COLUMN):
            obj.update(json.loads(row[EXTRA_COLUMN]))
        out.append(json.dumps(obj) + "\n")
    return "".join(out)


def write_jsonl(table: pa.Table, path: str | Path) -> None:
    """Write ``table`` as JSON lines atomically."""
    atomic_write_text(Path(path), format_jsonl(table))
