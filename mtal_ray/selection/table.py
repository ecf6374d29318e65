"""The confidence table: the selection library's one input.

The scorer writes one row per pool sample with the columns

============================  =========================================================
``id``                        sample id (string, unique)
``<task>.ec``                 entropy-based confidence in [0, 1] (lower = less certain)
``<task>.da``                 optional dropout agreement in [0, 1]
``<task>.cost``               optional annotation cost of the sample for ``<task>``
``joint.cost``                optional cost of annotating the sample on every task
``n_tokens``                  optional sentence length (the cost model's ``m``)
``<task>.n_entities``         optional entity count (token-level tasks' cost model)
============================  =========================================================

Tasks are discovered from the ``*.ec`` columns, in the table's column order (the first
task is the "first axis" of MT-PAR). A table without confidences — what the AL loop
writes for a round whose selector reads none (MT-R, ST-R): ``id`` and ``n_tokens`` only,
no model run — names its tasks in the schema metadata ``mtal_ray.tasks`` (a JSON list;
``mtal_ray.token_tasks`` lists those whose cost counts entities) or has none; only the
methods with ``needs_confidence = False`` select from it.

:func:`load_table` accepts a :class:`pyarrow.Table`, a Parquet path or a mapping of
columns and returns a validated :class:`ConfidenceTable` whose rows are **sorted by id**:
every tie between samples is broken by ascending id, so a selection never depends on the
row order the scorer happened to produce.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from numpy.typing import NDArray

from mtal_ray.errors import EmptyPoolError, SelectionError


@dataclass(frozen=True, eq=False)
class ConfidenceTable:
    """A validated confidence table with rows sorted by id.

    Attributes
    ----------
    ids : pyarrow.StringArray, shape (n,)
        Sample ids in ascending order (unique).
    tasks : tuple of str
        Task names in column order.
    columns : dict of str to ndarray, each shape (n,)
        Every other numeric column (``<task>.ec``, ``<task>.da``, costs, ``n_tokens``...)
        as float64, permuted to id order.
    source : str
        Where the table came from (for error messages).
    token_tasks : tuple of str
        Tasks whose annotation cost counts entities (``<task>.n_entities``) even where the
        table has no such column (a table without confidences; see the module docstring).
    """

    ids: pa.Array
    tasks: tuple[str, ...]
    columns: dict[str, NDArray[np.float64]] = field(repr=False)
    source: str = "<table>"
    token_tasks: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def n(self) -> int:
        """Number of samples in the pool."""
        return len(self.ids)

    def column(self, name: str) -> NDArray[np.float64]:
        """Return column ``name``, shape (n,); raise :class:`SelectionError` if absent."""
        try:
            return self.columns[name]
        except KeyError:
            raise SelectionError(
                f"{self.source}: missing column {name!r} (have: {', '.join(sorted(self.columns))})"
            ) from None

    def has(self, name: str) -> bool:
        """Whether the table holds column ``name``."""
        return name in self.columns

    @property
    def has_confidence(self) -> bool:
        """Whether the table holds confidences (``<task>.ec`` columns) at all."""
        return any(name.endswith(".ec") for name in self.columns)

    def ec(self, task: str) -> NDArray[np.float64]:
        """Entropy-based confidences of ``task``, shape (n,)."""
        self.check_task(task)
        return self.column(f"{task}.ec")

    def da(self, task: str) -> NDArray[np.float64]:
        """Dropout agreement of ``task``, shape (n,); needs the ``<task>.da`` column."""
        self.check_task(task)
        return self.column(f"{task}.da")

    def ec_matrix(self) -> NDArray[np.float64]:
        """All tasks' confidences, shape (n, T), columns in task order."""
        return np.column_stack([self.column(f"{t}.ec") for t in self.tasks])

    def check_task(self, task: str) -> None:
        """Raise :class:`SelectionError` unless ``task`` is one of the table's tasks."""
        if task not in self.tasks:
            raise SelectionError(
                f"{self.source}: unknown task {task!r}; the table's tasks are "
                f"{', '.join(self.tasks)}"
            )

    def take_ids(self, rows: NDArray[np.intp]) -> list[str]:
        """Ids of the given row positions, in the given order."""
        return self.ids.take(pa.array(np.asarray(rows, dtype=np.int64))).to_pylist()

    def rows_of(self, ids: list[str]) -> NDArray[np.intp]:
        """Row positions of ``ids``; raise :class:`SelectionError` for an id not in the pool."""
        pos = pc.index_in(pa.array(ids, type=pa.string()), value_set=self.ids)
        if pos.null_count:
            missing = [i for i, p in zip(ids, pos.to_pylist(), strict=True) if p is None]
            raise SelectionError(f"{self.source}: ids not in the pool: {missing[:5]}")
        return pos.to_numpy(zero_copy_only=False).astype(np.intp)


def load_table(data: Any, *, source: str | None = None) -> ConfidenceTable:
    """Validate a confidence table and sort its rows by id.

    Parameters
    ----------
    data : ConfidenceTable, pyarrow.Table, str, Path or Mapping[str, array-like]
        The table itself, a Parquet file, or columns by name.
    source : str, optional
        Name used in error messages (defaults to the path, or ``<table>``).

    Returns
    -------
    ConfidenceTable

    Raises
    ------
    SelectionError
        On a missing ``id`` column, duplicate ids, NaN, infinite or out-of-range
        confidences, or non-numeric columns. (A table without ``*.ec`` columns loads; the
        selectors that read confidences refuse it.)
    EmptyPoolError
        When the table has no rows.
    """
    if isinstance(data, ConfidenceTable):
        return data
    if isinstance(data, str | Path):
        source = source or str(data)
        try:  # one file: ParquetFile skips the dataset layer (and its ~0.5 s pandas import)
            table = pq.ParquetFile(data).read() if Path(data).is_file() else pq.read_table(data)
        except (OSError, pa.ArrowInvalid) as err:
            raise SelectionError(f"{data}: cannot read Parquet confidence table: {err}") from None
    elif isinstance(data, pa.Table):
        table = data
    elif isinstance(data, Mapping):
        try:
            table = pa.table({k: _as_arrow(v) for k, v in data.items()})
        except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as err:
            raise SelectionError(f"{source or '<columns>'}: bad columns: {err}") from None
    else:
        raise SelectionError(
            f"confidence table must be a pyarrow.Table, a Parquet path or a dict of columns, "
            f"not {type(data).__name__}"
        )
    return _from_arrow(table, source or "<table>")


def _as_arrow(values: Any) -> pa.Array:
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values
    arr = np.asarray(values)
    if arr.dtype.kind in "US":
        return pa.array(arr.astype(str).tolist(), type=pa.string())
    return pa.array(arr)


def _from_arrow(table: pa.Table, source: str) -> ConfidenceTable:
    names = table.column_names
    if "id" not in names:
        raise SelectionError(f"{source}: missing column 'id'")
    tasks = tuple(name[: -len(".ec")] for name in names if name.endswith(".ec"))
    token_tasks = _metadata_names(table, "token_tasks", source)
    if not tasks:  # no confidences: the tasks the writer named, if any
        tasks = _metadata_names(table, "tasks", source)
    if table.num_rows == 0:
        raise EmptyPoolError(f"{source}: the pool is empty (0 rows)")
    ids = table.column("id").combine_chunks()
    if not pa.types.is_string(ids.type) and not pa.types.is_large_string(ids.type):
        ids = pc.cast(ids, pa.string())
    if ids.null_count:
        raise SelectionError(f"{source}: column 'id' has {ids.null_count} null value(s)")
    order = _id_order(ids)
    if order is not None:
        ids = ids.take(pa.array(order))
    dup = pc.not_equal(ids[1:], ids[:-1]) if len(ids) > 1 else None
    if dup is not None and not pc.all(dup).as_py():
        first = int(np.flatnonzero(~dup.to_numpy(zero_copy_only=False))[0])
        raise SelectionError(f"{source}: duplicate id {ids[first].as_py()!r}")

    columns: dict[str, NDArray[np.float64]] = {}
    for name in names:
        if name == "id":
            continue
        col = table.column(name)
        if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
            if name.endswith((".ec", ".da", ".cost", ".n_entities")) or name in {
                "joint.cost",
                "n_tokens",
            }:
                raise SelectionError(f"{source}: column {name!r} must be numeric, not {col.type}")
            continue  # other columns (tokens, text...) are not the selector's business
        values = col.to_numpy().astype(np.float64)
        if order is not None:
            values = values[order]
        finite = np.isfinite(values)
        if not finite.all():  # NaN, null or ±inf: a BLP would see NaN
            row = int(np.flatnonzero(~finite)[0])
            kind = "NaN/null" if np.isnan(values[row]) else "infinite"
            raise SelectionError(
                f"{source}: column {name!r} has {kind} values (first at id {ids[row].as_py()!r}: "
                f"{values[row]}); every value must be a finite number"
            )
        if name.endswith((".ec", ".da")) and ((values < 0).any() or (values > 1).any()):
            row = int(np.flatnonzero((values < 0) | (values > 1))[0])
            raise SelectionError(
                f"{source}: column {name!r} must lie in [0, 1]; id {ids[row].as_py()!r} has "
                f"{values[row]}"
            )
        columns[name] = values
    return ConfidenceTable(
        ids=ids, tasks=tasks, columns=columns, source=source, token_tasks=token_tasks
    )


def _metadata_names(table: pa.Table, key: str, source: str) -> tuple[str, ...]:
    """The JSON list of names under the schema metadata ``mtal_ray.<key>`` (or ())."""
    raw = (table.schema.metadata or {}).get(f"mtal_ray.{key}".encode())
    if raw is None:
        return ()
    try:
        names = json.loads(raw)
    except ValueError:
        names = None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise SelectionError(f"{source}: schema metadata mtal_ray.{key} is not a list of names")
    return tuple(names)


def _id_order(ids: pa.Array) -> NDArray[np.int64] | None:
    """Permutation sorting ``ids`` ascending, or None when they are already sorted."""
    if len(ids) < 2 or pc.all(pc.less_equal(ids[:-1], ids[1:])).as_py():
        return None
    return pc.sort_indices(ids).to_numpy()
