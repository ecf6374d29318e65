"""Label vocabularies, built from the training split only."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from mtal_ray.errors import MtalError, UnseenLabelError
from mtal_ray.taskspec import TASK_SPECS, task_spec

#: The column whose values are a task's labels.
LABEL_COLUMN = {name: spec.label_column for name, spec in TASK_SPECS.items()}


@dataclass(frozen=True)
class LabelVocab:
    """The labels of one task, in a fixed order (``O`` first for BIO tasks, then sorted)."""

    task: str
    labels: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def index(self, label: str) -> int:
        """Position of ``label``; raises :class:`UnseenLabelError` for a label not in training."""
        try:
            return self._positions[label]
        except KeyError:
            raise UnseenLabelError(
                f"task {self.task!r}: label {label!r} does not occur in the training split"
            ) from None

    def __contains__(self, label: object) -> bool:
        return label in self._positions

    @property
    def _positions(self) -> dict[str, int]:
        cache = self.__dict__.get("_cache")
        if cache is None:
            cache = {label: i for i, label in enumerate(self.labels)}
            object.__setattr__(self, "_cache", cache)
        return cache

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly form (stored in checkpoints)."""
        return {"task": self.task, "labels": list(self.labels)}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> LabelVocab:
        """Inverse of :meth:`to_dict`."""
        return cls(task=str(data["task"]), labels=tuple(data["labels"]))  # type: ignore[arg-type]


def label_counts(table: pa.Table, task: str) -> Counter[str]:
    """Counts of every label of ``task`` in ``table`` (unannotated rows skipped)."""
    spec = task_spec(task)
    column = spec.label_column
    counts: Counter[str] = Counter()
    if column not in table.column_names:
        return counts
    values = table.column(column)  # counted in Arrow: no Python object per row or word
    if spec.kind != "sentence":
        values = pc.list_flatten(values)
        if spec.kind == "relation":
            values = pc.struct_field(values, "type")
    for entry in pc.value_counts(values.drop_null()).to_pylist():
        counts[entry["values"]] += entry["counts"]
    return counts


def build_vocab(table: pa.Table, task: str) -> LabelVocab:
    """The vocabulary of ``task`` from a (training) table."""
    labels = sorted(label_counts(table, task))
    if task_spec(task).bio:
        labels = ["O"] + [x for x in labels if x != "O"]
    if not labels:
        raise MtalError(f"task {task!r}: the training split has no annotated labels")
    return LabelVocab(task=task, labels=tuple(labels))


def build_vocabs(table: pa.Table, tasks: list[str]) -> dict[str, LabelVocab]:
    """Vocabularies of several tasks from the training split."""
    return {task: build_vocab(table, task) for task in tasks}


def unseen_labels(vocabs: dict[str, LabelVocab], table: pa.Table) -> dict[str, dict[str, int]]:
    """Labels of ``table`` (a dev/test split) that the vocabularies do not know, with counts.

    They are reported, never silently mapped to a known label.
    """
    report: dict[str, dict[str, int]] = {}
    for task, vocab in vocabs.items():
        missing = {k: v for k, v in label_counts(table, task).items() if k not in vocab}
        if missing:
            report[task] = dict(sorted(missing.items()))
    return report
