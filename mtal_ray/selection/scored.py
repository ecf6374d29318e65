"""Score-based methods (paper Table 1): random, single-task and aggregated confidences, RRF.

Every score is "lower = select first"; ties are broken by ascending id.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from numpy.typing import NDArray

from mtal_ray.selection.base import ScoreSelector, TaskMixin, WeightedMixin
from mtal_ray.selection.ranking import competition_ranks
from mtal_ray.selection.table import ConfidenceTable

#: Reciprocal-rank-fusion constant (Cormack et al., 2009; paper eq. 5).
RRF_K = 60


@dataclasses.dataclass(frozen=True, repr=False)
class MtR(ScoreSelector):
    """MT-R: a uniformly random order, fixed by ``seed`` (independent of row order)."""

    name = "mt-r"
    needs_confidence = False
    seed: int = 0

    def scores(self, ct: ConfidenceTable) -> NDArray[np.float64]:
        return np.random.default_rng(self.seed).permutation(ct.n).astype(np.float64)


@dataclasses.dataclass(frozen=True, repr=False)
class StR(TaskMixin, MtR):
    """ST-R: random selection for a single-task learner on ``task``."""

    name = "st-r"
    single_task = True


@dataclasses.dataclass(frozen=True, repr=False)
class MtEc(TaskMixin, ScoreSelector):
    """MT-EC: entropy-based confidence of one task of the multi-task model."""

    name = "mt-ec"

    def scores(self, ct: ConfidenceTable) -> NDArray[np.float64]:
        return ct.ec(self.task)


@dataclasses.dataclass(frozen=True, repr=False)
class StEc(MtEc):
    """ST-EC: entropy-based confidence of a single-task model; annotates ``task`` only."""

    name = "st-ec"
    single_task = True


@dataclasses.dataclass(frozen=True, repr=False)
class MtDa(TaskMixin, ScoreSelector):
    """MT-DA: dropout agreement of one task of the multi-task model."""

    name = "mt-da"
    needs_mc_dropout = True

    def validate(self, ct: ConfidenceTable) -> None:
        super().validate(ct)
        ct.column(f"{self.task}.da")

    def scores(self, ct: ConfidenceTable) -> NDArray[np.float64]:
        return ct.da(self.task)


@dataclasses.dataclass(frozen=True, repr=False)
class StDa(MtDa):
    """ST-DA: dropout agreement of a single-task model; annotates ``task`` only."""

    name = "st-da"
    single_task = True


@dataclasses.dataclass(frozen=True, repr=False)
class MtAvg(WeightedMixin, ScoreSelector):
    """MT-AVG: (weighted) mean of the tasks' EC; β-weighted per §6.1 (a)."""

    name = "mt-avg"

    def scores(self, ct: ConfidenceTable) -> NDArray[np.float64]:
        return ct.ec_matrix() @ self.task_weights(ct)


@dataclasses.dataclass(frozen=True, repr=False)
class MtAvgDa(WeightedMixin, ScoreSelector):
    """MT-AVGDA: (weighted) mean of the tasks' dropout agreement."""

    name = "mt-avgda"
    needs_mc_dropout = True

    def validate(self, ct: ConfidenceTable) -> None:
        for t in ct.tasks:
            ct.column(f"{t}.da")

    def scores(self, ct: ConfidenceTable) -> NDArray[np.float64]:
        da = np.column_stack([ct.da(t) for t in ct.tasks])
        return da @ self.task_weights(ct)


@dataclasses.dataclass(frozen=True, repr=False)
class MtMax(ScoreSelector):
    """MT-MAX: the largest of the tasks' EC (a sample is as confident as its best task)."""

    name = "mt-max"

    def scores(self, ct: ConfidenceTable) -> NDArray[np.float64]:
        return ct.ec_matrix().max(axis=1)


@dataclasses.dataclass(frozen=True, repr=False)
class MtMin(ScoreSelector):
    """MT-MIN: the smallest of the tasks' EC."""

    name = "mt-min"

    def scores(self, ct: ConfidenceTable) -> NDArray[np.float64]:
        return ct.ec_matrix().min(axis=1)


def rrf_scores(
    ec: NDArray[np.float64], weights: NDArray[np.float64], k: int = RRF_K
) -> NDArray[np.float64]:
    """Weighted reciprocal rank fusion, Σ_t w_t / (k + r_t(x)), shape (n,).

    ``r_t`` ranks the samples by task t's confidence, lowest first, from 1; equal
    confidences share the lower rank. Higher fused scores are less confident.

    Parameters
    ----------
    ec : ndarray, shape (n, T)
    weights : ndarray, shape (T,)
    k : int
    """
    fused = np.zeros(ec.shape[0])
    for t in range(ec.shape[1]):
        if weights[t]:
            fused += weights[t] / (k + competition_ranks(ec[:, t]))
    return fused


@dataclasses.dataclass(frozen=True, repr=False)
class MtRrf(WeightedMixin, ScoreSelector):
    """MT-RRF: reciprocal rank fusion of the tasks' EC rankings (k = 60); §6.1 (b)."""

    name = "mt-rrf"
    k: int = RRF_K

    def scores(self, ct: ConfidenceTable) -> NDArray[np.float64]:
        return -rrf_scores(ct.ec_matrix(), self.task_weights(ct), self.k)
