"""Sentence classification (``id``, intent detection) over the pooled sentence vector.

Probabilities: ``probs`` ``[batch, classes]``. Decoding is the arg-max class; the metric is
accuracy on the rows annotated for ``id`` (a gold label unseen in training counts as an
error). Multi-intents such as ``a#b`` are single labels, as in the data contract.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import torch
from torch import nn

from mtal_ray.data.spans import Span
from mtal_ray.tasks.base import Features, Prediction, Task
from mtal_ray.tasks.losses import masked_mean, smoothed_nll
from mtal_ray.taskspec import TASK_SPECS


class ClassifierHead(nn.Module):
    """Dropout + linear layer over the sentence vector."""

    def __init__(self, hidden_size: int, n_labels: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(hidden_size, n_labels)

    def forward(self, features: Features) -> torch.Tensor:
        """``[batch, classes]`` logits."""
        return self.linear(self.dropout(features.sentence))


class IntentTask(Task):
    """Intent detection over ``id.label``."""

    spec = TASK_SPECS["id"]

    def build_head(self, hidden_size: int, dropout: float) -> nn.Module:
        return ClassifierHead(hidden_size, len(self.labels), dropout)

    def targets(self, table: pa.Table, n_words: int) -> dict[str, torch.Tensor]:
        label = torch.zeros(table.num_rows, dtype=torch.long)
        mask = torch.zeros(table.num_rows, dtype=torch.bool)
        if "id.label" in table.column_names:
            for row, value in enumerate(table.column("id.label").to_pylist()):
                index = self.label_index.get(value) if value is not None else None
                if index is not None:
                    label[row] = index
                    mask[row] = True
        return {"annotated": self.annotated(table), "label": label, "mask": mask}

    def loss(
        self,
        head: nn.Module,
        features: Features,
        targets: dict[str, torch.Tensor],
        alpha: float,
        gold_entities: list[list[Span]] | None = None,
    ) -> torch.Tensor:
        return masked_mean(*smoothed_nll(head(features), targets["label"], alpha, targets["mask"]))

    def probabilities(
        self, head: nn.Module, features: Features, entities: list[list[Span]] | None = None
    ) -> dict[str, Any]:
        """``probs`` ``[batch, classes]``."""
        return {"probs": torch.softmax(head(features), dim=-1)}

    def decode(self, probs: dict[str, Any], n_words: Sequence[int]) -> list[Prediction]:
        return [{"id.label": self.labels[j]} for j in probs["probs"].argmax(dim=-1).tolist()]

    def evaluate(self, predicted: Sequence[Prediction], gold: pa.Table) -> dict[str, float]:
        gold_labels = gold.column("id.label").to_pylist()
        pairs = [(g, p["id.label"]) for g, p in zip(gold_labels, predicted, strict=True) if g]
        accuracy = sum(g == p for g, p in pairs) / len(pairs) if pairs else 0.0
        return {"main": accuracy, "accuracy": accuracy}
