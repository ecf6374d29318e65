"""Dependency parsing (``dp``): the biaffine parser of Dozat & Manning (2017).

Arc scores ``s[i, j] = d_iᵀ U h_j + h_jᵀ u`` between each dependent ``i`` and each candidate
head ``j`` (0 = the root, represented by the ``[CLS]`` vector; ``j ≥ 1`` = word ``j``), from
two MLP projections of the word vectors; relation scores are biaffine in the dependent and
its head. Training: (label-smoothed) cross-entropy over candidate heads plus over
relations at the gold head.

Probabilities (``probabilities``):

* ``arc_probs`` ``[batch, words, words + 1]``: dependent × candidate head (column 0 =
  root); padding and self-loops have probability 0.
* ``heads`` ``[batch, words]``: the decoded heads (CoNLL-U convention, 0 = root) —
  maximum spanning trees (:func:`mtal_ray.tasks.trees.decode_tree`, Chu-Liu-Edmonds,
  single root) when ``tree_decoding`` is true (default), else the per-word arg-max.
* ``label_probs`` ``[batch, words, relations]``: relation distribution at the decoded head.
* ``word_mask`` ``[batch, words]``.

Evaluation: UAS and LAS (``main``) over all words of the rows annotated for ``dp``,
**punctuation included** (the CoNLL 2018 UD shared task convention); relations are
compared as full strings (subtypes such as ``obl:tmod`` must match).
:func:`attachment_scores` can exclude punctuation (gold ``punct``) for CoNLL-X style numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from torch import nn

from mtal_ray.data.spans import Span
from mtal_ray.tasks.base import Features, Prediction, Task
from mtal_ray.tasks.losses import masked_mean, smoothed_nll
from mtal_ray.tasks.trees import decode_tree
from mtal_ray.taskspec import TASK_SPECS


def _mlp(hidden_size: int, out: int, dropout: float) -> nn.Module:
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden_size, out), nn.GELU())


class BiaffineHead(nn.Module):
    """Arc and relation scorers of the biaffine parser."""

    def __init__(
        self,
        hidden_size: int,
        n_labels: int,
        dropout: float,
        arc_dim: int = 256,
        rel_dim: int = 128,
    ) -> None:
        super().__init__()
        self.arc_dep = _mlp(hidden_size, arc_dim, dropout)
        self.arc_head = _mlp(hidden_size, arc_dim, dropout)
        self.rel_dep = _mlp(hidden_size, rel_dim, dropout)
        self.rel_head = _mlp(hidden_size, rel_dim, dropout)
        self.arc_u = nn.Parameter(torch.zeros(arc_dim, arc_dim))
        self.arc_bias = nn.Parameter(torch.zeros(arc_dim))
        self.rel_u = nn.Parameter(torch.zeros(n_labels, rel_dim, rel_dim))
        self.rel_lin = nn.Linear(2 * rel_dim, n_labels)
        nn.init.xavier_uniform_(self.arc_u)
        nn.init.xavier_uniform_(self.rel_u)

    def forward(self, features: Features) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Arc logits ``[B, W, W+1]`` and the relation projections of dependents and heads."""
        candidates = torch.cat([features.root.unsqueeze(1), features.words], dim=1)
        dep = self.arc_dep(features.words)
        head = self.arc_head(candidates)
        arcs = torch.einsum("bid,de,bje->bij", dep, self.arc_u, head)
        arcs = arcs + (head @ self.arc_bias).unsqueeze(1)
        return arcs, self.rel_dep(features.words), self.rel_head(candidates)

    def relation_logits(
        self, rel_dep: torch.Tensor, rel_head: torch.Tensor, heads: torch.Tensor
    ) -> torch.Tensor:
        """``[B, W, relations]`` logits of each word's relation to the given head index."""
        index = heads.clamp(min=0).unsqueeze(-1).expand(-1, -1, rel_head.size(-1))
        at_head = rel_head.gather(1, index)
        bilinear = torch.einsum("bid,ldk,bik->bil", rel_dep, self.rel_u, at_head)
        return bilinear + self.rel_lin(torch.cat([rel_dep, at_head], dim=-1))


def candidate_mask(word_mask: torch.Tensor) -> torch.Tensor:
    """``[B, W, W+1]`` bool: root and the other real words are candidate heads of a word."""
    batch, words = word_mask.shape
    heads = torch.cat([torch.ones(batch, 1, dtype=torch.bool), word_mask.cpu()], dim=1)
    mask = word_mask.cpu().unsqueeze(-1) & heads.unsqueeze(1)
    eye = torch.eye(words, dtype=torch.bool)
    mask[:, :, 1:] &= ~eye
    return mask.to(word_mask.device)


def attachment_scores(
    gold_heads: Sequence[Sequence[int]],
    gold_rels: Sequence[Sequence[str]],
    pred_heads: Sequence[Sequence[int]],
    pred_rels: Sequence[Sequence[str]],
    exclude_punct: bool = False,
) -> dict[str, float]:
    """UAS and LAS over all words (optionally without words whose gold relation is ``punct``)."""
    total = attached = labeled = 0
    for gh, gr, ph, pr in zip(gold_heads, gold_rels, pred_heads, pred_rels, strict=True):
        for g_head, g_rel, p_head, p_rel in zip(gh, gr, ph, pr, strict=True):
            if exclude_punct and g_rel.split(":")[0] == "punct":
                continue
            total += 1
            if g_head == p_head:
                attached += 1
                labeled += g_rel == p_rel
    uas = attached / total if total else 0.0
    las = labeled / total if total else 0.0
    return {"uas": uas, "las": las}


class DependencyTask(Task):
    """Biaffine dependency parsing over ``dp.head`` / ``dp.deprel``."""

    spec = TASK_SPECS["dp"]

    def __init__(self, labels: Sequence[str], tree_decoding: bool = True) -> None:
        super().__init__(labels)
        self.tree_decoding = tree_decoding

    def build_head(self, hidden_size: int, dropout: float) -> nn.Module:
        return BiaffineHead(hidden_size, len(self.labels), dropout)

    def targets(self, table: pa.Table, n_words: int) -> dict[str, torch.Tensor]:
        rows = table.num_rows
        heads = torch.zeros(rows, n_words, dtype=torch.long)
        rels = torch.zeros(rows, n_words, dtype=torch.long)
        head_mask = torch.zeros(rows, n_words, dtype=torch.bool)
        rel_mask = torch.zeros(rows, n_words, dtype=torch.bool)
        if "dp.head" in table.column_names:
            all_heads = table.column("dp.head").to_pylist()
            all_rels = table.column("dp.deprel").to_pylist()
            for row, (hs, rs) in enumerate(zip(all_heads, all_rels, strict=True)):
                if hs is None or rs is None:
                    continue
                for i, (h, r) in enumerate(zip(hs[:n_words], rs[:n_words], strict=True)):
                    if h is None or not 0 <= h <= n_words:
                        continue
                    heads[row, i] = h
                    head_mask[row, i] = True
                    index = self.label_index.get(r)
                    if index is not None:
                        rels[row, i] = index
                        rel_mask[row, i] = True
        return {
            "annotated": self.annotated(table),
            "heads": heads,
            "head_mask": head_mask,
            "rels": rels,
            "rel_mask": rel_mask,
        }

    def loss(
        self,
        head: nn.Module,
        features: Features,
        targets: dict[str, torch.Tensor],
        alpha: float,
        gold_entities: list[list[Span]] | None = None,
    ) -> torch.Tensor:
        arcs, rel_dep, rel_head = head(features)
        cands = candidate_mask(features.word_mask)
        gold = targets["heads"]
        # a gold head outside the candidates (truncated sentence) cannot be learned
        reachable = cands.gather(-1, gold.unsqueeze(-1)).squeeze(-1)
        arc_mask = targets["head_mask"] & features.word_mask & reachable
        arc_loss = masked_mean(*smoothed_nll(arcs, gold, alpha, arc_mask, candidates=cands))
        rel_logits = head.relation_logits(rel_dep, rel_head, gold)
        rel_mask = targets["rel_mask"] & arc_mask
        rel_loss = masked_mean(*smoothed_nll(rel_logits, targets["rels"], alpha, rel_mask))
        return arc_loss + rel_loss

    def probabilities(
        self, head: nn.Module, features: Features, entities: list[list[Span]] | None = None
    ) -> dict[str, Any]:
        """``arc_probs`` [B, W, W+1], ``heads`` [B, W], ``label_probs`` [B, W, L], ``word_mask``."""
        arcs, rel_dep, rel_head = head(features)
        cands = candidate_mask(features.word_mask)
        log_probs = torch.log_softmax(arcs.masked_fill(~cands, torch.finfo(arcs.dtype).min), -1)
        arc_probs = log_probs.exp() * cands
        if self.tree_decoding:
            heads = self._trees(log_probs, features.word_mask)
        else:
            heads = arc_probs.argmax(dim=-1)
        label_probs = torch.softmax(head.relation_logits(rel_dep, rel_head, heads), dim=-1)
        return {
            "arc_probs": arc_probs,
            "heads": heads,
            "label_probs": label_probs,
            "word_mask": features.word_mask,
        }

    @staticmethod
    def _trees(log_probs: torch.Tensor, word_mask: torch.Tensor) -> torch.Tensor:
        scores = log_probs.detach().float().clamp(min=-1e4).cpu().numpy()
        lengths = word_mask.sum(dim=1).tolist()
        heads = np.zeros(word_mask.shape, dtype=np.int64)
        for row, n in enumerate(lengths):
            heads[row, :n] = decode_tree(scores[row, :n, : n + 1])
        return torch.from_numpy(heads).to(log_probs.device)

    def decode(self, probs: dict[str, Any], n_words: Sequence[int]) -> list[Prediction]:
        heads = probs["heads"].tolist()
        rels = probs["label_probs"].argmax(dim=-1).tolist()
        return [
            {"dp.head": hs[:n], "dp.deprel": [self.labels[r] for r in rs[:n]]}
            for hs, rs, n in zip(heads, rels, n_words, strict=True)
        ]

    def evaluate(self, predicted: Sequence[Prediction], gold: pa.Table) -> dict[str, float]:
        gold_heads = gold.column("dp.head").to_pylist()
        gold_rels = gold.column("dp.deprel").to_pylist()
        keep = [i for i, h in enumerate(gold_heads) if h is not None]
        scores = attachment_scores(
            [gold_heads[i] for i in keep],
            [gold_rels[i] for i in keep],
            [predicted[i]["dp.head"] for i in keep],
            [predicted[i]["dp.deprel"] for i in keep],
        )
        return {"main": scores["las"], **scores}
