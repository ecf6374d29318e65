"""The task plugin interface shared by every head.

A :class:`Task` knows one annotation layer of the data contract: how to turn its columns
into target tensors, which head (``torch.nn.Module``) predicts it, its loss, the raw
probabilities that confidence scoring consumes, how to decode those probabilities back
into the contract's own column form, and its evaluation metric (``main`` in ``[0, 1]``).

Heads read :class:`Features`, the word-level view of the (possibly task-specific)
encoder output that the sharing scheme produced for that task.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa
import torch
from torch import nn

from mtal_ray.data.spans import Span
from mtal_ray.taskspec import TaskSpec

#: A predicted row: contract column name -> python value (as in the corpus tables).
Prediction = dict[str, Any]


@dataclass
class Features:
    """Encoder output for one task, in word space.

    Attributes
    ----------
    words
        ``[batch, words, hidden]``: each word's first sub-word vector.
    word_mask
        ``[batch, words]`` bool, true for real words.
    root
        ``[batch, hidden]``: the ``[CLS]`` vector (the dependency root).
    sentence
        ``[batch, hidden]``: mean of the sub-word vectors under the attention mask.
    """

    words: torch.Tensor
    word_mask: torch.Tensor
    root: torch.Tensor
    sentence: torch.Tensor


class Task(ABC):
    """One task: columns, head, loss, probabilities, decoding, metric.

    Parameters
    ----------
    labels
        The label vocabulary (from the training split, see ``mtal_ray.data.build_vocabs``);
        for ``dp`` the dependency relations, for ``re`` the relation types.
    """

    #: The task's facts (:mod:`mtal_ray.taskspec`); a concrete plugin sets only this, and
    #: ``name``, ``columns`` and ``requires`` are derived from it.
    spec: ClassVar[TaskSpec]
    #: Task name as used in configs and column prefixes.
    name: ClassVar[str]
    #: Contract columns this task reads and writes.
    columns: ClassVar[tuple[str, ...]]
    #: Tasks whose predictions this task needs at inference (``re`` needs ``ner``).
    requires: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        spec = cls.__dict__.get("spec")
        if spec is not None:
            cls.name = spec.name
            cls.columns = spec.column_names
            cls.requires = spec.requires

    def __init__(self, labels: Sequence[str]) -> None:
        self.labels: tuple[str, ...] = tuple(labels)
        self.label_index: dict[str, int] = {label: i for i, label in enumerate(self.labels)}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(labels={len(self.labels)})"

    def annotated(self, table: pa.Table) -> torch.Tensor:
        """``[batch]`` bool: rows of ``table`` annotated for this task."""
        column = self.columns[0]
        if column not in table.column_names:
            return torch.zeros(table.num_rows, dtype=torch.bool)
        return torch.tensor(table.column(column).is_valid().to_pylist(), dtype=torch.bool)

    @abstractmethod
    def build_head(self, hidden_size: int, dropout: float) -> nn.Module:
        """A fresh head over ``hidden_size``-dimensional word vectors."""

    @abstractmethod
    def targets(self, table: pa.Table, n_words: int) -> dict[str, torch.Tensor]:
        """Target tensors of a batch padded to ``n_words`` words.

        Always holds ``annotated`` (``[batch]`` bool); labels unknown to the vocabulary
        are masked out rather than mapped to another label.
        """

    @abstractmethod
    def loss(
        self,
        head: nn.Module,
        features: Features,
        targets: dict[str, torch.Tensor],
        alpha: float,
        gold_entities: list[list[Span]] | None = None,
    ) -> torch.Tensor:
        """Mean (label-smoothed) loss over the annotated units of the batch (0 if none)."""

    @abstractmethod
    def probabilities(
        self,
        head: nn.Module,
        features: Features,
        entities: list[list[Span]] | None = None,
    ) -> dict[str, Any]:
        """Raw per-position probabilities for confidence scoring (shapes in the subclass)."""

    @abstractmethod
    def decode(self, probs: dict[str, Any], n_words: Sequence[int]) -> list[Prediction]:
        """Per row, the predicted contract columns of this task."""

    @abstractmethod
    def evaluate(self, predicted: Sequence[Prediction], gold: pa.Table) -> dict[str, float]:
        """Scores on the rows of ``gold`` annotated for this task; ``main`` is the headline."""
