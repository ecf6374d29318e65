"""MT-PAR: iterated Pareto frontiers of the tasks' EC (paper §4.2; β per §6.1 (d)).

The selection takes whole frontiers (layers, see :mod:`mtal_ray.selection.pareto`) in
order while they fit; when the last needed frontier has f points but only p are still
needed, it takes every ⌊f/p⌋-th point (the 1st, (1+⌊f/p⌋)-th, ...) ordered by the first
task's confidence (then the next tasks', then id). Within a frontier the selection order
is the same first-axis order. Under a budget the frontiers are walked whole (GRD_AL).

Weights (§6.1 d): for two tasks the paper restricts the dominance condition of the task
with weight β < 0.5 to ``c ≤ q_β·c'`` with q_β the β-quantile of that task's confidences.
For T tasks, every task whose weight w_t is below the uniform 1/T gets the factor
``q_t`` = the (T·w_t/2)-quantile of its confidences (= q_β for T = 2); the others keep
factor 1, so uniform weights give plain Pareto.

What the rule does, measured (2000 points uniform in [0, 1]², n = 100, weight β on ``re``;
mean EC of the picks, ner / re): β = 0.3: 0.15 / 0.11, β = 0.5: 0.18 / 0.13, β = 0.7:
0.20 / 0.16 — a weak pull that does not follow β as MT-AVG's does (0.07 / 0.13, 0.09 /
0.09, 0.14 / 0.07) — and at β = 0 or 1 the factor is the pool's smallest confidence, so
almost nothing dominates, the first frontier holds most of the pool and its even thinning
picks nearly at random (0.49 / 0.57). This is the paper's rule taken literally (its Table 7
has MT-PAR peak at β = 0.7 and drop beyond); sweep β for MT-PAR with that in mind.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from numpy.typing import NDArray

from mtal_ray.selection.base import RankingSelector, WeightedMixin
from mtal_ray.selection.pareto import layer_order, pareto_layers, thin
from mtal_ray.selection.table import ConfidenceTable


def dominance_factors(ec: NDArray[np.float64], weights: NDArray[np.float64]) -> NDArray[np.float64]:
    """Per-task dominance factors for weighted MT-PAR, shape (T,).

    Parameters
    ----------
    ec : ndarray, shape (n, T)
    weights : ndarray, shape (T,), summing to 1
    """
    n_tasks = ec.shape[1]
    factors = np.ones(n_tasks)
    for t in range(n_tasks):
        if weights[t] < 1.0 / n_tasks - 1e-12:
            factors[t] = float(np.quantile(ec[:, t], n_tasks * weights[t] / 2.0))
    return factors


@dataclasses.dataclass(frozen=True, repr=False)
class MtPar(WeightedMixin, RankingSelector):
    """MT-PAR: Pareto frontiers, least confident first; the last one thinned evenly."""

    name = "mt-par"

    def _layers(self, ct: ConfidenceTable, k: int | None) -> tuple[NDArray, list[NDArray]]:
        ec = ct.ec_matrix()
        factors = dominance_factors(ec, self.task_weights(ct))
        return ec, pareto_layers(ec, k, factors)

    def priority(self, ct: ConfidenceTable, k: int | None) -> NDArray[np.intp]:
        ec, layers = self._layers(ct, k)
        return np.concatenate([layer_order(ec, layer) for layer in layers])

    def choose(self, ct: ConfidenceTable, n: int) -> NDArray[np.intp]:
        ec, layers = self._layers(ct, n)
        parts, still = [], n
        for layer in layers:
            ordered = layer_order(ec, layer)
            parts.append(ordered if ordered.size <= still else thin(ordered, still))
            still -= parts[-1].size
            if not still:
                break
        return np.concatenate(parts)
