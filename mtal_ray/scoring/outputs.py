"""Per-task model outputs of one batch and the per-row scores computed from them.

This module is numpy only: the torch side (:mod:`mtal_ray.scoring.model_adapter`) turns a
model's forward pass into :class:`TaskOutput` objects, and :func:`score_outputs` turns the
deterministic pass (EC, entity counts) and the ``k`` stochastic passes (DA) into the
columns of the confidence table (:mod:`mtal_ray.scoring.table`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from mtal_ray.confidence import (
    apply_temperature,
    arc_candidate_mask,
    class_entropy_confidence,
    dropout_agreement,
    pair_entropy_confidence,
    token_entropy_confidence,
    tree_entropy_confidence,
)

__all__ = ["OutputKind", "TaskOutput", "predictions", "score_outputs"]

OutputKind = Literal["token", "arc", "class", "pair"]


@dataclass
class TaskOutput:
    """One task's probabilities for a batch of ``n`` sentences.

    Attributes
    ----------
    kind
        ``"token"``: ``probs`` ``(n, m, s)`` per word, ``mask`` ``(n, m)`` real words.
        ``"arc"``: ``probs`` ``(n, m, m + 1)`` head distributions (0 = root), ``mask``
        ``(n, m)``. ``"class"``: ``probs`` ``(n, s)``, no mask. ``"pair"``: ``probs``
        ``(n, p, r)`` over relation types + "none" for candidate entity pairs, ``mask``
        ``(n, p)`` real pairs; the pairs must be the same in every pass of a batch.
    probs
        The probabilities.
    mask
        Real positions, as above.
    n_entities
        ``(n,)`` predicted entities per sentence, for span tasks.
    """

    kind: OutputKind
    probs: npt.NDArray[np.floating]
    mask: npt.NDArray[np.bool_] | None = None
    n_entities: npt.NDArray[np.integer] | None = None

    def positions(self) -> npt.NDArray[np.bool_]:
        """Real positions, ``(n, m)`` (``(n, 1)`` for sentence classification)."""
        if self.kind == "class":
            return np.ones((self.probs.shape[0], 1), bool)
        if self.mask is None:
            return np.ones(self.probs.shape[:2], bool)
        return np.asarray(self.mask, bool)


def predictions(output: TaskOutput) -> npt.NDArray[np.int64]:
    """Argmax label (head, relation) of each position, ``(n, m)`` (``(n, 1)`` for ``class``).

    Arcs take the best candidate head of each word independently (not a decoded tree):
    DA measures agreement on the unlabeled edges as the model scores them.
    """
    probs = np.asarray(output.probs)
    if output.kind == "class":
        return probs.argmax(axis=-1)[:, None].astype(np.int64)
    if output.kind == "arc":
        cand = arc_candidate_mask(output.positions())
        probs = np.where(cand, probs, -1.0)
    return probs.argmax(axis=-1).astype(np.int64)


def _ec(output: TaskOutput, temperature: float) -> npt.NDArray[np.float64]:
    probs = output.probs if temperature == 1.0 else apply_temperature(output.probs, temperature)
    if output.kind == "token":
        return token_entropy_confidence(probs, output.positions())
    if output.kind == "arc":
        return tree_entropy_confidence(probs, output.positions())
    if output.kind == "class":
        return class_entropy_confidence(probs)
    if output.kind == "pair":
        return pair_entropy_confidence(probs, output.positions())
    raise ValueError(f"unknown output kind {output.kind!r}")


def score_outputs(
    deterministic: Mapping[str, TaskOutput],
    stochastic: Sequence[Mapping[str, TaskOutput]] | None = None,
    temperatures: Mapping[str, float] | None = None,
) -> dict[str, npt.NDArray]:
    """Confidence-table columns (without ``id`` / ``n_tokens``) for one batch.

    Parameters
    ----------
    deterministic : mapping task -> TaskOutput
        Outputs of the pass with dropout off: EC and entity counts come from it.
    stochastic : sequence of mappings, optional
        Outputs of the ``k >= 2`` passes with dropout on; DA comes from their argmax
        predictions. None for EC-only scoring.
    temperatures : mapping task -> float, optional
        Post-hoc temperature applied before EC.

    Returns
    -------
    dict
        ``<task>.ec``, ``<task>.da`` (with ``stochastic``), ``<task>.n_entities`` (span
        tasks), ``re.n_pairs`` (pair tasks) as numpy arrays of length ``n``.
    """
    temps = temperatures or {}
    columns: dict[str, npt.NDArray] = {}
    for task, output in deterministic.items():
        columns[f"{task}.ec"] = _ec(output, float(temps.get(task, 1.0)))
        if stochastic is not None:
            if len(stochastic) < 2:
                raise ValueError(f"dropout agreement needs >= 2 passes, got {len(stochastic)}")
            preds = np.stack([predictions(passes[task]) for passes in stochastic])
            columns[f"{task}.da"] = dropout_agreement(preds, output.positions())
        if output.n_entities is not None:
            columns[f"{task}.n_entities"] = np.asarray(output.n_entities, np.int32)
        if output.kind == "pair":
            columns[f"{task}.n_pairs"] = output.positions().sum(axis=1).astype(np.int32)
    return columns
