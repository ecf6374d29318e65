"""The confidence table: the one artifact scoring hands to selection.

One row per pool sentence, in any order (join on ``id``). Columns:

=========================  ========  =====================================================
column                     type      meaning
=========================  ========  =====================================================
``id``                     string    the sentence id of the corpus table (unique)
``n_tokens``               int32     number of words (the cost model's ``m``)
``<task>.ec``              float64   entropy-based confidence in [0, 1] (paper eq. 1–2);
                                     lower = less certain
``<task>.da``              float64   dropout agreement in [0, 1] over ``k`` MC-dropout
                                     passes (eq. 3); absent when scored EC-only
``<task>.n_entities``      int32     span tasks (``ner``, ``sf``, ``re``): entities the
                                     model predicts in the deterministic pass (the cost
                                     model's ``nt``); for ``re`` the entities its pairs
                                     are built from
``re.n_pairs``             int32     ``re`` only: candidate (ordered) entity pairs scored
=========================  ========  =====================================================

Tasks appear in the order they were scored. Confidences are never NaN: a sentence with
nothing to score for a task (no candidate pair for ``re``) gets 1.0 (see
:mod:`mtal_ray.confidence.entropy`). The file is Parquet, written atomically (a temporary
sibling renamed over the target), with the scoring settings in the schema metadata
(``mtal_ray.k``, ``mtal_ray.ec_only``, ``mtal_ray.checkpoint``, ``mtal_ray.tasks``).

A round whose selector reads no confidence (MT-R, ST-R) runs no model:
:func:`write_unscored_table` writes ``id`` and ``n_tokens`` only, with ``mtal_ray.tasks``,
``mtal_ray.token_tasks`` (the span tasks, whose cost would count predicted entities) and
``mtal_ray.scoring = "skipped"`` in the metadata (:mod:`mtal_ray.selection.table`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mtal_ray.data.atomic import atomic_path
from mtal_ray.errors import ScoringError
from mtal_ray.taskspec import TASK_SPECS

__all__ = [
    "SPAN_TASKS",
    "check_complete",
    "confidence_schema",
    "read_confidence_table",
    "write_confidence_table",
    "write_unscored_table",
]

#: Tasks whose predictions are entity spans (they get ``<task>.n_entities``).
SPAN_TASKS: tuple[str, ...] = tuple(name for name, spec in TASK_SPECS.items() if spec.spans)


def confidence_schema(tasks: Sequence[str], ec_only: bool) -> pa.Schema:
    """Schema of the confidence table for ``tasks``.

    Parameters
    ----------
    tasks : sequence of str
        Scored tasks, in order.
    ec_only : bool
        True when no ``<task>.da`` columns are produced.
    """
    fields = [pa.field("id", pa.string(), nullable=False), pa.field("n_tokens", pa.int32())]
    for task in tasks:
        fields.append(pa.field(f"{task}.ec", pa.float64()))
        if not ec_only:
            fields.append(pa.field(f"{task}.da", pa.float64()))
        if task in SPAN_TASKS:
            fields.append(pa.field(f"{task}.n_entities", pa.int32()))
        if task in TASK_SPECS and TASK_SPECS[task].kind == "relation":
            fields.append(pa.field(f"{task}.n_pairs", pa.int32()))
    return pa.schema(fields)


def check_complete(table: pa.Table, expected_ids: Iterable[str] | pa.Array) -> None:
    """Raise :class:`~mtal_ray.errors.ScoringError` unless every id occurs exactly once.

    Arrow throughout (a pool of 10^6 ids is checked without a Python object per id).

    Parameters
    ----------
    table : pyarrow.Table
        A confidence table.
    expected_ids : iterable of str, or an Arrow array
        The ids of the pool that was scored.
    """
    got = table.column("id").cast(pa.string())
    expected = (
        expected_ids.cast(pa.string())
        if isinstance(expected_ids, pa.Array | pa.ChunkedArray)
        else pa.array([str(i) for i in expected_ids], type=pa.string())
    )
    counts = pc.value_counts(got)
    dup = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    missing = pc.unique(expected.filter(pc.invert(pc.is_in(expected, value_set=got))))
    extra = pc.unique(got.filter(pc.invert(pc.is_in(got, value_set=expected))))
    problems = []
    for ids, what in (
        (dup, "scored more than once"),
        (missing, "missing"),
        (extra, "not in the pool"),
    ):
        if len(ids):
            first = pc.sort_indices(ids)[0].as_py()
            problems.append(f"{len(ids)} ids {what} (e.g. {ids[first].as_py()!r})")
    if problems:
        raise ScoringError("confidence table is incomplete: " + "; ".join(problems))


def write_confidence_table(
    table: pa.Table, path: str | os.PathLike[str], metadata: Mapping[str, object] | None = None
) -> Path:
    """Write ``table`` to Parquet at ``path`` atomically (temporary file + rename).

    Parameters
    ----------
    table : pyarrow.Table
        The confidence table.
    path : path-like
        Target file; its folder is created if needed.
    metadata : mapping, optional
        Extra schema metadata, stored JSON-encoded under ``mtal_ray.<key>``.

    Returns
    -------
    pathlib.Path
        The written path.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if metadata:
        meta = dict(table.schema.metadata or {})
        meta.update({f"mtal_ray.{k}".encode(): json.dumps(v).encode() for k, v in metadata.items()})
        table = table.replace_schema_metadata(meta)
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp)
    return target


def write_unscored_table(
    pool: pa.Table, tasks: Sequence[str], path: str | os.PathLike[str]
) -> Path:
    """The confidence table of a round whose selector reads no confidence: ``id`` and
    ``n_tokens`` of every ``pool`` row (``id``, ``tokens``), written without running a
    model. Returns the written path."""
    n_tokens = pc.list_value_length(pool.column("tokens")).cast(pa.int32()).fill_null(0)
    table = pa.table({"id": pool.column("id"), "n_tokens": n_tokens})
    metadata = {
        "tasks": list(tasks),
        "token_tasks": [t for t in tasks if t in SPAN_TASKS],
        "scoring": "skipped",
    }
    return write_confidence_table(table, path, metadata)


def read_confidence_table(path: str | os.PathLike[str]) -> pa.Table:
    """Read a confidence table written by :func:`write_confidence_table`.

    Raises
    ------
    ScoringError
        If the file is missing, unreadable or lacks the ``id`` column.
    """
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as err:
        raise ScoringError(f"{path}: cannot read confidence table ({err})") from err
    if "id" not in table.column_names:
        raise ScoringError(f"{path}: confidence table has no 'id' column")
    return table


def table_metadata(table: pa.Table) -> dict[str, object]:
    """The ``mtal_ray.*`` schema metadata of a confidence table, decoded."""
    out: dict[str, object] = {}
    for key, value in (table.schema.metadata or {}).items():
        name = key.decode()
        if name.startswith("mtal_ray."):
            out[name.removeprefix("mtal_ray.")] = json.loads(value.decode())
    return out
