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
