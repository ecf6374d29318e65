"""Registry of task plugins by name (``dp``, ``ner``, ``sf``, ``id``, ``re``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mtal_ray.data.vocab import LabelVocab
from mtal_ray.errors import ConfigError
from mtal_ray.tasks.base import Task
from mtal_ray.tasks.classification import IntentTask
from mtal_ray.tasks.dependency import DependencyTask
from mtal_ray.tasks.relation import RelationTask
from mtal_ray.tasks.tagging import NerTask, SlotFillingTask

#: Task name -> plugin class. Register a new task by adding its class here.
TASKS: dict[str, type[Task]] = {
    cls.name: cls for cls in (DependencyTask, NerTask, SlotFillingTask, IntentTask, RelationTask)
}


def label_lists(vocabs: Mapping[str, LabelVocab | Sequence[str]]) -> dict[str, list[str]]:
    """Plain label lists from ``build_vocabs`` output (or from lists, e.g. a checkpoint)."""
    return {
        task: list(vocab.labels) if isinstance(vocab, LabelVocab) else list(vocab)
        for task, vocab in vocabs.items()
    }


def build_tasks(
    tasks: Sequence[str], vocabs: Mapping[str, LabelVocab | Sequence[str]]
) -> dict[str, Task]:
    """Task plugins for ``tasks`` with their label vocabularies, in the given order.

    Raises
    ------
    ConfigError
        For an unknown task, a missing vocabulary, or a task whose prerequisite task
        (``re`` needs ``ner``) is not in ``tasks``.
    """
    labels = label_lists(vocabs)
    built: dict[str, Task] = {}
    for name in tasks:
        if name not in TASKS:
            raise ConfigError(f"tasks: unknown task {name!r} (known: {', '.join(TASKS)})")
        cls = TASKS[name]
        for needed in cls.requires:
            if needed not in tasks:
                raise ConfigError(f"tasks: task {name!r} needs task {needed!r} in the same model")
        if name not in labels:
            raise ConfigError(f"tasks: no label vocabulary for task {name!r}")
        built[name] = cls(labels[name])
    return built
