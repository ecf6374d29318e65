"""The one data contract: column names and Arrow types of an example table.

A corpus split is a :class:`pyarrow.Table` with a stable string ``id``, the words in
``tokens`` and, per task, a nullable column group. A null value means "this row is not
annotated for that task", which makes partial and disjoint annotation natural. The task
column groups come from the task table, :data:`mtal_ray.taskspec.TASK_SPECS` (its
docstring lists them); the names below are derived from it.

Format-specific columns (``conllu.raw``, ``jsonl.extra``) carry what a writer needs to
reproduce the source file byte for byte; they are optional and never read by models.
"""

from __future__ import annotations

import pyarrow as pa

from mtal_ray.errors import MtalError
from mtal_ray.taskspec import RELATION_TYPE, TASK_SPECS, task_spec

__all__ = [
    "BASE_COLUMNS",
    "RELATION_TYPE",
    "TAGGING_TASKS",
    "TASK_COLUMNS",
    "TASK_DEPENDS_ON",
    "annotated_mask",
    "make_table",
    "task_columns",
    "tasks_in",
]

#: Columns of each task, with their Arrow types, in a fixed order.
TASK_COLUMNS: dict[str, dict[str, pa.DataType]] = {
    name: spec.column_types for name, spec in TASK_SPECS.items()
}

#: Tasks whose labels are BIO tags over the words.
TAGGING_TASKS: tuple[str, ...] = tuple(name for name, spec in TASK_SPECS.items() if spec.bio)

#: Tasks whose annotation depends on another task's annotation.
TASK_DEPENDS_ON: dict[str, str] = {
    name: spec.requires[0] for name, spec in TASK_SPECS.items() if spec.requires
}

BASE_COLUMNS: dict[str, pa.DataType] = {"id": pa.string(), "tokens": pa.list_(pa.string())}


def task_columns(task: str) -> list[str]:
    """Column names of ``task``; raises :class:`MtalError` for an unknown task."""
    return list(task_spec(task).column_names)


def tasks_in(table: pa.Table) -> list[str]:
    """Tasks whose columns are present in ``table`` and annotated on at least one row."""
    found = []
    for task, columns in TASK_COLUMNS.items():
        first = next(iter(columns))
        if first in table.column_names and table.column(first).null_count < table.num_rows:
            found.append(task)
    return found


def annotated_mask(table: pa.Table, task: str) -> list[bool]:
    """Per row, whether ``table`` holds an annotation of ``task``."""
    first = task_columns(task)[0]
    if first not in table.column_names:
        return [False] * table.num_rows
    return table.column(first).is_valid().to_pylist()


def make_table(columns: dict[str, list], extra: dict[str, pa.DataType] | None = None) -> pa.Table:
    """Build an example table from python lists with the contract's Arrow types.

    Parameters
    ----------
    columns
        Column name -> list of python values (``None`` for "not annotated").
    extra
        Arrow types of additional (format-specific) columns.
    """
    types = dict(BASE_COLUMNS)
    for cols in TASK_COLUMNS.values():
        types.update(cols)
    types.update(extra or {})
    arrays, names = [], []
    for name, values in columns.items():
        if name not in types:
            raise MtalError(f"column {name!r} is not part of the data contract")
        arrays.append(pa.array(values, type=types[name]))
        names.append(name)
    return pa.Table.from_arrays(arrays, names=names)
