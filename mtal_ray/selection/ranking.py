"""Ordering primitives shared by the selectors.

Rows of a :class:`~mtal_ray.selection.table.ConfidenceTable` are sorted by id, so
"ties broken by ascending id" is "ties broken by ascending row position" everywhere here.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def smallest(keys: NDArray[np.float64], k: int | None = None) -> NDArray[np.intp]:
    """Positions of the ``k`` smallest keys, ascending, ties by position.

    Parameters
    ----------
    keys : ndarray, shape (n,)
    k : int, optional
        How many; all ``n`` when None.

    Returns
    -------
    ndarray of intp, shape (min(k, n),)
    """
    n = keys.shape[0]
    if k is None or k >= n // 4:
        return np.argsort(keys, kind="stable")[: n if k is None else k]
    if k <= 0:
        return np.empty(0, dtype=np.intp)
    kth = np.partition(keys, k - 1)[k - 1]
    below = np.flatnonzero(keys < kth)
    tied = np.flatnonzero(keys == kth)[: k - below.size]
    chosen = np.concatenate([below, tied])
    return chosen[np.lexsort((chosen, keys[chosen]))]


def competition_ranks(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """1-based "min" ranks, lowest value first: 1 + number of strictly smaller values.

    Equal values share a rank, so RRF treats equally confident samples equally; that is
    also why the sort need not be stable (a run of equal values starts at the same
    position whatever their order inside it), and the default sort is faster.
    """
    order = np.argsort(values)
    ordered = values[order]
    # position of the first element of each run of equal values, for every position
    new_run = np.r_[True, ordered[1:] != ordered[:-1]]
    first = np.maximum.accumulate(np.where(new_run, np.arange(values.size), 0))
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = first + 1.0
    return ranks


def greedy_fill(
    order: NDArray[np.intp], costs: NDArray[np.float64], budget: float
) -> tuple[NDArray[np.intp], float]:
    """Walk ``order`` and take every item that still fits the budget (GRD_AL).

    An item that does not fit is skipped and the walk goes on, so cheaper items further
    down can still use the rest of the budget.

    Parameters
    ----------
    order : ndarray of intp, shape (k,)
        Candidate positions in priority order.
    costs : ndarray, shape (n,)
        Cost of each position (positive).
    budget : float

    Returns
    -------
    taken : ndarray of intp
        The positions taken, in priority order.
    spent : float
        Their total cost (≤ budget).
    """
    taken: list[NDArray[np.intp]] = []
    remaining = float(budget)
    spent = 0.0
    cand = order
    while cand.size:
        c = costs[cand]
        keep = c <= remaining
        cand, c = cand[keep], c[keep]
        if not cand.size:
            break
        # the longest prefix that fits is taken at once; the item after it does not fit
        csum = np.cumsum(c)
        m = int(np.searchsorted(csum, remaining, side="right"))
        if m:
            taken.append(cand[:m])
            spent += float(csum[m - 1])
            remaining = float(budget) - spent
        cand = cand[m + 1 :]
    out = np.concatenate(taken) if taken else np.empty(0, dtype=np.intp)
    return out, spent
