"""The one data contract: column names and Arrow types of an example table.

A corpus split is a :class:`pyarrow.Table` with a stable string ``id``, the words in
``tokens`` and, per task, a nullable column group. A null value means "this row is not
annotated for that task", which makes partial and disjoint annotation natural.

============  ===============================================  ==========================
task          columns                                          meaning
============  ===============================================  ==========================
``dp``        ``dp.head`` list<int32>, ``dp.deprel`` list<str>  CoNLL-U HEAD (1-based, 0 =
                                                               root) and DEPREL per word
``ner``       ``ner.tags`` list<str>                           BIO tags (``B-PER``, ``O``)
``sf``        ``sf.tags`` list<str>                            BIO slot tags
``id``        ``id.label`` str                                 intent (``a#b`` is one label)
``re``        ``re.relations`` list<struct<head, tail, type>>  head/tail index the entity
                                                               spans of ``ner.tags`` in
                                                               order of span start
============  ===============================================  ==========================

Format-specific columns (``conllu.raw``, ``jsonl.extra``) carry what a writer needs to
reproduce the source file byte for byte; they are optional and never read by models.
"""

from __future__ import annotations

import pyarrow as pa

from mtal_ray.errors import MtalError

RELATION_TYPE = pa.struct([("head", pa.int32()), ("tail", pa.int32()), ("type", pa.string())])

#: Columns of each task, with their Arrow types, in a fixed order.
TASK_COLUMNS: dict[str, dict[str, pa.DataType]] = {
    "dp": {"dp.head": pa.list_(pa.int32()), "dp.deprel": pa.list_(pa.string())},
    "ner": {"ner.tags": pa.list_(pa.string())},
    "sf": {"sf.tags": pa.list_(pa.string())},
    "id": {"id.label": pa.string()},
    "re": {"re.relations": pa.list_(RELATION_TYPE)},
}

#: Tasks whose labels are BIO tags over the words.
TAGGING_TASKS = ("ner", "sf")

#: Tasks whose annotation depends on another task's annotation.
TASK_DEPENDS_ON = {"re": "ner"}

BASE_COLUMNS: dict[str, pa.DataType] = {"id": pa.string(), "tokens": pa.list_(pa.string())}


def task_columns(task: str) -> list[str]:
    """Column names of ``task``; raises :class:`MtalError` for an unknown task."""
    if task not in TASK_COLUMNS:
        known = ", ".join(TASK_COLUMNS)
        raise MtalError(f"unknown task {task!r} (known tasks: {known})")
    return list(TASK_COLUMNS[task])


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
