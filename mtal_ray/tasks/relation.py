"""Relation extraction (``re``): a pair classifier over entity mentions (HMTL-style).

Each entity mention is represented by its first and last word vectors; every ordered pair
of distinct mentions of a sentence ``(head, tail)`` is classified by an MLP over the two
mention vectors into "no relation" (class 0) or one of the relation types.

Which mentions: at training the gold spans of ``ner.tags``; at inference (and therefore
evaluation) the spans *predicted by the ``ner`` head*, so NER errors propagate to RE as
in the paper's hierarchical setting. ``re`` therefore requires ``ner`` among the tasks.
Rows whose ``re.relations`` or ``ner.tags`` is null contribute no RE loss.

Probabilities (``probabilities``):

* ``pair_probs`` ``[batch, pairs, 1 + relation types]`` (class 0 = no relation);
* ``pair_mask`` ``[batch, pairs]`` bool;
* ``pairs``: per row, the list of ``(head_entity, tail_entity)`` indices in pair order;
* ``entities``: per row, the mention spans ``(start, end_exclusive, type)`` used.

Decoding writes ``re.relations`` as ``{"head", "tail", "type"}`` indexing the predicted
``ner.tags`` spans (in span-start order, the contract's convention). The metric is
**strict** micro F1: a predicted relation counts only if both mentions' boundaries *and*
entity types and the relation type match a gold relation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import torch
from torch import nn

from mtal_ray.data.spans import Span, bio_to_spans
from mtal_ray.tasks.base import Features, Prediction, Task
from mtal_ray.tasks.losses import masked_mean, smoothed_nll
from mtal_ray.taskspec import TASK_SPECS

NO_RELATION = "<none>"


def entity_pairs(n_entities: int) -> list[tuple[int, int]]:
    """All ordered pairs of distinct mentions, head-major: the head's enumeration order."""
    return [(h, t) for h in range(n_entities) for t in range(n_entities) if h != t]


class PairHead(nn.Module):
    """MLP over ``[head mention; tail mention]``, mention = ``[first word; last word]``."""

    def __init__(self, hidden_size: int, n_classes: int, dropout: float, dim: int = 256) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(4 * hidden_size, dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(dim, n_classes),
        )

    def forward(
        self, features: Features, entities: Sequence[Sequence[Span]]
    ) -> tuple[torch.Tensor, torch.Tensor, list[list[tuple[int, int]]]]:
        """Logits ``[B, P, classes]``, pair mask ``[B, P]`` and the pairs of each row."""
        pairs = [entity_pairs(len(row)) for row in entities]
        n_pairs = max((len(p) for p in pairs), default=0)
        batch, device = features.words.size(0), features.words.device
        index = torch.zeros(batch, max(n_pairs, 1), 4, dtype=torch.long)
        mask = torch.zeros(batch, max(n_pairs, 1), dtype=torch.bool)
        for row, spans in enumerate(entities):
            n = len(spans)
            if n < 2:
                continue
            ends = torch.tensor([(span[0], span[1] - 1) for span in spans], dtype=torch.long)
            head, tail = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
            distinct = head != tail  # row-major: head-major, the order of entity_pairs
            index[row, : n * (n - 1)] = torch.cat([ends[head[distinct]], ends[tail[distinct]]], 1)
            mask[row, : n * (n - 1)] = True
        index, mask = index.to(device), mask.to(device)
        if torch.is_grad_enabled():  # training: padded pairs, every parameter in the graph
            hidden = features.words.size(-1)
            gathered = features.words.gather(
                1, index.view(batch, -1, 1).expand(-1, -1, hidden)
            ).view(batch, index.size(1), 4 * hidden)
            # an empty batch still runs the MLP on zeros so every parameter is in the graph
            return self.mlp(gathered), mask, pairs
        return self._pair_logits(features.words, index, mask), mask, pairs

    def _dropout_active(self) -> bool:
        return any(m.training and m.p > 0 for m in self.mlp if isinstance(m, nn.Dropout))

    def _pair_logits(
        self, words: torch.Tensor, index: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """The logits of the real pairs only (no gradients: evaluation, prediction, MC
        dropout); padding pairs get 0 (they are masked everywhere). Early in AL an
        untrained NER head proposes dozens of mentions per sentence, pairs grow with their
        square, and a padded ``[B, P_max, 4 × hidden]`` batch spent most of the time here.

        With dropout on (MC dropout), the MLP runs over each real pair's gathered mention
        vectors, with its own dropout masks. With dropout off, the first linear layer of
        ``[h_first; h_last; t_first; t_last]`` is the sum of four projections of single
        words: every word is projected once (``[B, 4, T, dim]``) and a pair costs ``4 × dim``
        additions instead of ``4 × hidden × dim`` multiply-adds (the same numbers up to
        rounding).
        """
        rows, slots = mask.nonzero(as_tuple=True)
        at = index[rows, slots]  # [N, 4] word positions of the real pairs
        if self._dropout_active():
            out = self.mlp(words[rows[:, None], at].flatten(1))
        else:
            first: nn.Linear = self.mlp[1]  # type: ignore[assignment]
            dim, hidden = first.out_features, words.size(-1)
            weight = first.weight.view(dim, 4, hidden)
            projected = torch.einsum("bth,dkh->bktd", words, weight)
            summed = first.bias + sum(projected[rows, k, at[:, k]] for k in range(4))
            out = self.mlp[2:](summed)  # [N, classes]
        logits = out.new_zeros(*mask.shape, out.size(-1))
        logits[rows, slots] = out
        return logits


#: The tags column whose entity spans are the relations' mentions (``ner.tags``).
MENTION_COLUMN = TASK_SPECS[TASK_SPECS["re"].requires[0]].label_column


class RelationTask(Task):
    """Relation extraction over ``re.relations`` between ``ner.tags`` mentions."""

    spec = TASK_SPECS["re"]

    def __init__(self, labels: Sequence[str]) -> None:
        super().__init__([NO_RELATION, *[x for x in labels if x != NO_RELATION]])

    def build_head(self, hidden_size: int, dropout: float) -> nn.Module:
        return PairHead(hidden_size, len(self.labels), dropout)

    def annotated(self, table: pa.Table) -> torch.Tensor:
        mask = super().annotated(table)
        if MENTION_COLUMN not in table.column_names:
            return torch.zeros_like(mask)
        return mask & torch.tensor(table.column(MENTION_COLUMN).is_valid().to_pylist())

    def targets(self, table: pa.Table, n_words: int) -> dict[str, torch.Tensor]:
        annotated = self.annotated(table)
        gold = gold_entities(table)
        pairs = [entity_pairs(len(row)) for row in gold]
        n_pairs = max(max((len(p) for p in pairs), default=0), 1)
        labels = torch.zeros(table.num_rows, n_pairs, dtype=torch.long)
        mask = torch.zeros(table.num_rows, n_pairs, dtype=torch.bool)
        relations = (
            table.column("re.relations").to_pylist()
            if "re.relations" in table.column_names
            else [None] * table.num_rows
        )
        for row, (rels, row_pairs) in enumerate(zip(relations, pairs, strict=True)):
            if not annotated[row]:
                continue
            by_pair = {(r["head"], r["tail"]): r["type"] for r in rels or []}
            for k, pair in enumerate(row_pairs):
                index = self.label_index.get(by_pair.get(pair, NO_RELATION))
                if index is not None:
                    labels[row, k] = index
                    mask[row, k] = True
        return {"annotated": annotated, "labels": labels, "mask": mask}

    def loss(
        self,
        head: nn.Module,
        features: Features,
        targets: dict[str, torch.Tensor],
        alpha: float,
        gold_entities: list[list[Span]] | None = None,
    ) -> torch.Tensor:
        logits, pair_mask, _ = head(features, gold_entities or [[]] * features.words.size(0))
        n = min(logits.size(1), targets["labels"].size(1))
        mask = targets["mask"][:, :n] & pair_mask[:, :n]
        return masked_mean(*smoothed_nll(logits[:, :n], targets["labels"][:, :n], alpha, mask))

    def probabilities(
        self, head: nn.Module, features: Features, entities: list[list[Span]] | None = None
    ) -> dict[str, Any]:
        """``pair_probs`` [B, P, 1+R], ``pair_mask`` [B, P], ``pairs``, ``entities``."""
        entities = entities if entities is not None else [[] for _ in range(len(features.words))]
        logits, mask, pairs = head(features, entities)
        return {
            "pair_probs": torch.softmax(logits, dim=-1),
            "pair_mask": mask,
            "pairs": pairs,
            "entities": [list(row) for row in entities],
        }

    def decode(self, probs: dict[str, Any], n_words: Sequence[int]) -> list[Prediction]:
        best = probs["pair_probs"].argmax(dim=-1).tolist()
        out: list[Prediction] = []
        for row, row_pairs in enumerate(probs["pairs"]):
            relations = [
                {"head": h, "tail": t, "type": self.labels[best[row][k]]}
                for k, (h, t) in enumerate(row_pairs)
                if best[row][k] != 0
            ]
            out.append({"re.relations": relations})
        return out

    def evaluate(self, predicted: Sequence[Prediction], gold: pa.Table) -> dict[str, float]:
        gold_rels = gold.column("re.relations").to_pylist()
        gold_spans = gold_entities(gold)
        tp = n_pred = n_gold = 0
        for row, rels in enumerate(gold_rels):
            if rels is None:
                continue
            pred_tags = predicted[row].get(MENTION_COLUMN) or []
            pred_spans = bio_to_spans(pred_tags)
            g = relation_triples(rels, gold_spans[row])
            p = relation_triples(predicted[row]["re.relations"], pred_spans)
            tp += len(g & p)
            n_pred += len(p)
            n_gold += len(g)
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / n_gold if n_gold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"main": f1, "f1": f1, "precision": precision, "recall": recall}


def gold_entities(table: pa.Table) -> list[list[Span]]:
    """Per row, the spans of the gold ``ner.tags`` (empty where not annotated)."""
    if MENTION_COLUMN not in table.column_names:
        return [[] for _ in range(table.num_rows)]
    tags_column = table.column(MENTION_COLUMN).to_pylist()
    return [bio_to_spans(tags) if tags else [] for tags in tags_column]


def relation_triples(
    relations: Sequence[dict[str, Any]], spans: Sequence[Span]
) -> set[tuple[Span, Span, str]]:
    """Relations as ``(head span, tail span, type)`` with typed spans (for strict matching)."""
    return {
        (tuple(spans[r["head"]]), tuple(spans[r["tail"]]), r["type"])  # type: ignore[misc]
        for r in relations
        if r["head"] < len(spans) and r["tail"] < len(spans)
    }
