"""JSON lines with entity spans and relations -> tasks ``ner`` and ``re``.

One sentence per line::

    {"id": "s1", "tokens": [...], "entities": [{"start": 0, "end": 2, "type": "Peop"}],
     "relations": [{"head": 0, "tail": 1, "type": "Work_For"}]}

``end`` is exclusive; ``head``/``tail`` index ``entities``. Entities are stored as BIO
tags in ``ner.tags`` (they must not overlap) and relations refer to entity spans in order
of their start, which is the file's own order whenever the file lists entities by start.
A line without ``entities`` (``relations``) is not annotated for ``ner`` (``re``).
Other keys are kept in ``jsonl.extra`` and written back after the standard ones.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pyarrow as pa

from mtal_ray.data.atomic import atomic_write_text
from mtal_ray.data.schema import make_table
from mtal_ray.data.spans import bio_to_spans, spans_to_bio
from mtal_ray.errors import DataFormatError

EXTRA_COLUMN = "jsonl.extra"
_STANDARD_KEYS = ("id", "tokens", "entities", "relations")


def _entities(path: Path, lineno: int, n: int, entities: Any) -> tuple[list[str], list[int]]:
    """BIO tags for the entities and, per original entity, its index in start order."""
    if not isinstance(entities, list):
        raise DataFormatError(path, lineno, "'entities' must be a list")
    spans = []
    for k, ent in enumerate(entities):
        try:
            start, end, kind = int(ent["start"]), int(ent["end"]), str(ent["type"])
        except (KeyError, TypeError, ValueError) as err:
            raise DataFormatError(
                path, lineno, f"entity {k} needs integer 'start', 'end' and a 'type' ({err})"
            ) from err
        if not 0 <= start < end <= n:
            raise DataFormatError(
                path, lineno, f"entity {k} span [{start}, {end}) out of range for {n} tokens"
            )
        if not kind or any(c.isspace() for c in kind):
            raise DataFormatError(path, lineno, f"entity {k} has an invalid type {kind!r}")
        spans.append((start, end, kind, k))
    order = sorted(range(len(spans)), key=lambda i: spans[i][0])
    for a, b in itertools.pairwise(order):
        if spans[b][0] < spans[a][1]:
            raise DataFormatError(path, lineno, f"entities {spans[a][3]} and {spans[b][3]} overlap")
    rank = [0] * len(spans)
    for position, i in enumerate(order):
        rank[i] = position
    tags = spans_to_bio(n, [spans[i][:3] for i in order])
    return tags, rank


def read_jsonl(path: str | Path) -> pa.Table:
    """Read a JSON-lines file into an example table (tasks ``ner`` and ``re``).

    Raises
    ------
    DataFormatError
        Naming file and line: invalid JSON, missing tokens, a span out of range or
        overlapping, a relation that points at a missing entity, a duplicate id.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DataFormatError(path, None, f"cannot read file: {err}") from err
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
        tokens = obj.get("tokens")
        if (
            not isinstance(tokens, list)
            or not tokens
            or not all(isinstance(t, str) for t in tokens)
        ):
            raise DataFormatError(path, lineno, "'tokens' must be a non-empty list of strings")
        sid = str(obj["id"]) if "id" in obj else f"{path.stem}-{len(cols['id'])}"
        if sid in seen:
            raise DataFormatError(path, lineno, f"duplicate id {sid!r} (first at line {seen[sid]})")
        seen[sid] = lineno
        tags, rank = (
            (None, [])
            if "entities" not in obj
            else _entities(path, lineno, len(tokens), obj["entities"])
        )
        relations = None
        if "relations" in obj:
            if not isinstance(obj["relations"], list):
                raise DataFormatError(path, lineno, "'relations' must be a list")
            relations = []
            for k, rel in enumerate(obj["relations"]):
                try:
                    head, tail, kind = int(rel["head"]), int(rel["tail"]), str(rel["type"])
                except (KeyError, TypeError, ValueError) as err:
                    raise DataFormatError(
                        path, lineno, f"relation {k} needs integer 'head', 'tail' and a 'type'"
                    ) from err
                for role, value in (("head", head), ("tail", tail)):
                    if not 0 <= value < len(rank):
                        raise DataFormatError(
                            path,
                            lineno,
                            f"relation {k} {role} {value} points at a missing entity "
                            f"(the line has {len(rank)} entities)",
                        )
                relations.append({"head": rank[head], "tail": rank[tail], "type": kind})
        extra = {k: v for k, v in obj.items() if k not in _STANDARD_KEYS}
        cols["id"].append(sid)
        cols["tokens"].append(tokens)
        cols["ner.tags"].append(tags)
        cols["re.relations"].append(relations)
        cols[EXTRA_COLUMN].append(json.dumps(extra) if extra else None)
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
