"""Token tagging (``ner``, ``sf``): a linear layer over word vectors, BIO labels.

Probabilities: ``probs`` ``[batch, words, labels]`` (softmax per word) with ``word_mask``
``[batch, words]``. Decoding takes the arg-max label of each word (no CRF). The metric is
span-level micro F1 from ``seqeval`` in its default (conlleval-compatible) mode, on the
rows annotated for the task.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import pyarrow as pa
import torch
from torch import nn

from mtal_ray.data.spans import Span
from mtal_ray.tasks.base import Features, Prediction, Task
from mtal_ray.tasks.losses import masked_mean, smoothed_nll
from mtal_ray.taskspec import TASK_SPECS


class TaggerHead(nn.Module):
    """Dropout + linear layer from word vectors to label scores."""

    def __init__(self, hidden_size: int, n_labels: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(hidden_size, n_labels)

    def forward(self, features: Features) -> torch.Tensor:
        """``[batch, words, labels]`` logits."""
        return self.linear(self.dropout(features.words))


class TaggingTask(Task):
    """Base class of the BIO tagging tasks; subclasses only name their column."""

    tags_column: ClassVar[str]

    def build_head(self, hidden_size: int, dropout: float) -> nn.Module:
        return TaggerHead(hidden_size, len(self.labels), dropout)

    def targets(self, table: pa.Table, n_words: int) -> dict[str, torch.Tensor]:
        annotated = self.annotated(table)
        tags = torch.zeros(table.num_rows, n_words, dtype=torch.long)
        mask = torch.zeros(table.num_rows, n_words, dtype=torch.bool)
        if self.tags_column in table.column_names:
            for row, values in enumerate(table.column(self.tags_column).to_pylist()):
                for i, tag in enumerate((values or [])[:n_words]):
                    index = self.label_index.get(tag)
                    if index is not None:
                        tags[row, i] = index
                        mask[row, i] = True
        return {"annotated": annotated, "tags": tags, "mask": mask}

    def loss(
        self,
        head: nn.Module,
        features: Features,
        targets: dict[str, torch.Tensor],
        alpha: float,
        gold_entities: list[list[Span]] | None = None,
    ) -> torch.Tensor:
        logits = head(features)
        mask = targets["mask"] & features.word_mask
        return masked_mean(*smoothed_nll(logits, targets["tags"], alpha, mask))

    def probabilities(
        self, head: nn.Module, features: Features, entities: list[list[Span]] | None = None
    ) -> dict[str, Any]:
        """``probs`` ``[batch, words, labels]`` and ``word_mask`` ``[batch, words]``."""
        return {"probs": torch.softmax(head(features), dim=-1), "word_mask": features.word_mask}

    def decode(self, probs: dict[str, Any], n_words: Sequence[int]) -> list[Prediction]:
        best = probs["probs"].argmax(dim=-1).tolist()
        return [
            {self.tags_column: [self.labels[j] for j in row[:n]]}
            for row, n in zip(best, n_words, strict=True)
        ]

    def evaluate(self, predicted: Sequence[Prediction], gold: pa.Table) -> dict[str, float]:
        gold_tags = gold.column(self.tags_column).to_pylist()
        pairs = [
            (g, p[self.tags_column])
            for g, p in zip(gold_tags, predicted, strict=True)
            if g is not None
        ]
        if not pairs:
            return {"main": 0.0, "f1": 0.0, "precision": 0.0, "recall": 0.0}
        # imported here: seqeval pulls in scikit-learn (~2 s), which a process that only
        # predicts (a scoring actor, the annotation export) never needs
        from seqeval.metrics import f1_score, precision_score, recall_score

        y_true = [list(g) for g, _ in pairs]
        y_pred = [list(p) for _, p in pairs]
        f1 = float(f1_score(y_true, y_pred, zero_division=0))
        return {
            "main": f1,
            "f1": f1,
            "precision": float(precision_score(y_true, y_pred, zero_division=0)),
            "recall": float(recall_score(y_true, y_pred, zero_division=0)),
        }


class NerTask(TaggingTask):
    """Named entity recognition over ``ner.tags``."""

    spec = TASK_SPECS["ner"]
    tags_column = spec.label_column


class SlotFillingTask(TaggingTask):
    """Slot filling over ``sf.tags``."""

    spec = TASK_SPECS["sf"]
    tags_column = spec.label_column
