"""MT-IND: independent per-task selection (paper §4.2; β-weighted per §6.1 (c)).

Each task walks down its own ranking (least confident first, ties by id) and the walks
are interleaved by weight: task t's d-th sample (d = 1, 2, ...) comes at "time" d / w_t,
earlier times first, equal times in task order. A sample already taken by another task
is skipped — the paper's "re-iterate if overlaps occur". So a sample's key is

    key(x) = min_t (r_t(x) + 1) / w_t        (r_t = 0-based rank in task t)

and the selection is the n smallest keys. With uniform weights every task reaches the
same depth (⌊n/T⌋ each when nothing overlaps); with β on RE, RE's walk goes β/(1−β)
times deeper than NER's, so about 100·β % of the picks come from RE.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from numpy.typing import NDArray

from mtal_ray.selection.base import RankingSelector, WeightedMixin
from mtal_ray.selection.ranking import smallest
from mtal_ray.selection.table import ConfidenceTable


def independent_keys(
    ec: NDArray[np.float64], weights: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
    """MT-IND keys and the task that reaches each sample first.

    Parameters
    ----------
    ec : ndarray, shape (n, T)
        Confidences, rows in id order.
    weights : ndarray, shape (T,)

    Returns
    -------
    key : ndarray, shape (n,)
        ``min_t (r_t + 1) / w_t`` (inf when every weight is 0).
    first_task : ndarray of intp, shape (n,)
        The (lowest-index) task attaining the minimum.
    """
    n, n_tasks = ec.shape
    key = np.full(n, np.inf)
    first = np.zeros(n, dtype=np.intp)
    for t in range(n_tasks):
        if weights[t] <= 0:
            continue
        rank = np.empty(n, dtype=np.float64)
        rank[np.argsort(ec[:, t], kind="stable")] = np.arange(n, dtype=np.float64)
        key_t = (rank + 1.0) / weights[t]
        better = key_t < key
        key[better] = key_t[better]
        first[better] = t
    return key, first


@dataclasses.dataclass(frozen=True, repr=False)
class MtInd(WeightedMixin, RankingSelector):
    """MT-IND: per-task rankings interleaved by weight, overlaps skipped."""

    name = "mt-ind"

    def priority(self, ct: ConfidenceTable, k: int | None) -> NDArray[np.intp]:
        ec, weights = ct.ec_matrix(), self.task_weights(ct)
        if k is None or k >= ct.n or weights.max(initial=0.0) <= 0:
            key, first = independent_keys(ec, weights)
            return np.lexsort((np.arange(ct.n), first, key))
        rows, key, first = top_independent_keys(ec, weights, k)
        kth = np.partition(key, k - 1)[k - 1]
        keep = np.flatnonzero(key <= kth)  # every tie of the k-th key, resolved below
        cand = rows[keep]
        return cand[np.lexsort((cand, first[keep], key[keep]))]


def top_independent_keys(
    ec: NDArray[np.float64], weights: NDArray[np.float64], k: int
) -> tuple[NDArray[np.intp], NDArray[np.float64], NDArray[np.intp]]:
    """MT-IND keys for the rows whose key can be among the ``k`` smallest, without
    ranking the whole pool.

    Task t's top ``m_t`` rows reach key ``m_t / w_t``, so the ``k``-th smallest key is at
    most ``K = k / max_t w_t``; a row with key ``<= K`` lies in some task's top
    ``ceil(K w_t)`` rows (one more is taken), and a key from beyond them exceeds ``K``.
    So every row with key ``<= K`` is returned with the key and first task
    :func:`independent_keys` gives it; a returned row whose key exceeds ``K`` gets a key
    that exceeds it too (never selected). Returns ``(rows, key, first_task)``, rows sorted; needs
    ``max(weights) > 0``.
    """
    n, n_tasks = ec.shape
    limit = k / float(weights.max())
    tops: list[tuple[int, NDArray[np.intp]]] = []
    for t in range(n_tasks):
        if weights[t] > 0:  # one row more than ceil(K w_t): a float-rounded product
            depth = min(n, int(np.ceil(limit * weights[t])) + 1)
            tops.append((t, smallest(ec[:, t], depth)))  # its first ranks, ties by row
    rows = np.unique(np.concatenate([top for _, top in tops]))
    key = np.full(rows.size, np.inf)
    first = np.zeros(rows.size, dtype=np.intp)
    for t, top in tops:
        at = np.searchsorted(rows, top)
        key_t = (np.arange(top.size, dtype=np.float64) + 1.0) / weights[t]
        better = key_t < key[at]
        key[at[better]] = key_t[better]
        first[at[better]] = t
    return rows, key, first
