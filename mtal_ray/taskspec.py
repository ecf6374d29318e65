"""The facts about each task, in one table (no torch: readers, selection and configs use it).

A :class:`TaskSpec` says what a task *is*, independently of how it is learned: its name,
its columns in the data contract (:mod:`mtal_ray.data.schema`), the kind of annotation it
is, which task it builds on, the corpus formats that carry it and its default label
smoothing. Everything else reads these facts from :data:`TASK_SPECS` instead of repeating
them: the data contract's columns, the task plugins' columns and prerequisites
(:mod:`mtal_ray.tasks`), the confidence table's span columns, the training defaults.

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

Kinds of annotation (:data:`TaskKind`):

``tree``
    one head and one relation label per word (a dependency tree): ``dp``;
``tagging``
    one BIO tag per word, read as typed entity spans (scored by span F1): ``ner``, ``sf``;
``sentence``
    one label per sentence: ``id``;
``relation``
    typed, ordered pairs of the entity spans of the task it requires: ``re`` over ``ner``.

Adding a task starts here: one :class:`TaskSpec` in :data:`TASK_SPECS`, then its plugin in
:mod:`mtal_ray.tasks` and, if a format should carry it, its reader/writer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

from mtal_ray.errors import MtalError

__all__ = [
    "RELATION_TYPE",
    "TASK_SPECS",
    "TaskKind",
    "TaskSpec",
    "task_spec",
    "tasks_of_format",
    "with_dependencies",
]

#: What a task annotates (see the module docstring).
TaskKind = Literal["tree", "tagging", "sentence", "relation"]

#: One relation of ``re.relations``: indices of two entity spans and the relation type.
RELATION_TYPE = pa.struct([("head", pa.int32()), ("tail", pa.int32()), ("type", pa.string())])


@dataclass(frozen=True)
class TaskSpec:
    """What one task is: its data contract, kind, prerequisites, formats and defaults.

    Attributes
    ----------
    name
        Task name, as used in configs and as the prefix of its columns (``ner``).
    columns
        ``(column name, Arrow type)`` of the task's column group, in a fixed order; the
        first column is null exactly on rows not annotated for the task.
    label_column
        The column whose values are the task's labels (its vocabulary is built from it).
    kind
        What the task annotates: ``tree``, ``tagging``, ``sentence`` or ``relation``.
    requires
        Tasks this one is defined over: annotating it implies annotating them, and a model
        predicting it must predict them too (``re`` needs ``ner``'s entities).
    formats
        Corpus formats that can carry the task (``conllu``, ``slu``, ``jsonl``, ``conll``;
        a CoNLL column file carries one tagging task).
    label_smoothing
        Default label-smoothing α (paper: 0.2 for DP/NER in §5.4, 0.1 for SF/ID in §7.3).
    """

    name: str
    columns: tuple[tuple[str, pa.DataType], ...]
    label_column: str
    kind: TaskKind
    requires: tuple[str, ...] = ()
    formats: tuple[str, ...] = ()
    label_smoothing: float = 0.1

    @property
    def column_names(self) -> tuple[str, ...]:
        """Names of the task's columns, in order."""
        return tuple(name for name, _ in self.columns)

    @property
    def column_types(self) -> dict[str, pa.DataType]:
        """Column name -> Arrow type, in order."""
        return dict(self.columns)

    @property
    def bio(self) -> bool:
        """Whether the labels are BIO tags over the words (``O`` first in the vocabulary)."""
        return self.kind == "tagging"

    @property
    def spans(self) -> bool:
        """Whether predictions are built from entity spans (tagging and relation tasks)."""
        return self.kind in ("tagging", "relation")


def _spec(
    name: str,
    columns: dict[str, pa.DataType],
    label_column: str,
    kind: TaskKind,
    **rest: object,
) -> TaskSpec:
    return TaskSpec(name, tuple(columns.items()), label_column, kind, **rest)  # type: ignore[arg-type]


#: Every task, in the canonical order (columns, confidence tables and reports follow it).
TASK_SPECS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        _spec(
            "dp",
            {"dp.head": pa.list_(pa.int32()), "dp.deprel": pa.list_(pa.string())},
            "dp.deprel",
            "tree",
            formats=("conllu",),
            label_smoothing=0.2,
        ),
        _spec(
            "ner",
            {"ner.tags": pa.list_(pa.string())},
            "ner.tags",
            "tagging",
            formats=("conllu", "jsonl", "conll"),
            label_smoothing=0.2,
        ),
        _spec(
            "sf",
            {"sf.tags": pa.list_(pa.string())},
            "sf.tags",
            "tagging",
            formats=("slu", "conll"),
            label_smoothing=0.1,
        ),
        _spec(
            "id",
            {"id.label": pa.string()},
            "id.label",
            "sentence",
            formats=("slu",),
            label_smoothing=0.1,
        ),
        _spec(
            "re",
            {"re.relations": pa.list_(RELATION_TYPE)},
            "re.relations",
            "relation",
            requires=("ner",),
            formats=("jsonl",),
            label_smoothing=0.1,
        ),
    )
}


def task_spec(name: str) -> TaskSpec:
    """The spec of task ``name``; raises :class:`MtalError` for an unknown task."""
    try:
        return TASK_SPECS[name]
    except KeyError:
        known = ", ".join(TASK_SPECS)
        raise MtalError(f"unknown task {name!r} (known tasks: {known})") from None


def tasks_of_format(fmt: str) -> tuple[str, ...]:
    """Tasks a corpus format can carry, in the canonical task order."""
    return tuple(name for name, spec in TASK_SPECS.items() if fmt in spec.formats)


def with_dependencies(tasks: list[str]) -> list[str]:
    """``tasks`` plus every task they require (``re`` -> ``ner``), in the canonical order.

    Raises :class:`MtalError` for an unknown task.
    """
    out: set[str] = set()
    todo = list(tasks)
    while todo:
        task = todo.pop()
        if task not in out:
            out.add(task)
            todo.extend(task_spec(task).requires)
    return [name for name in TASK_SPECS if name in out]
