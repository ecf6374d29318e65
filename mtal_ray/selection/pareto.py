"""Pareto frontiers of confidence vectors (MT-PAR, paper §4.2 and §6.1).

Lower confidence is better (more worth annotating), so a point ``q`` *dominates* ``p``
when it is at least as uncertain on every task and more uncertain on one. The weighted
variant scales the dominated point first: with factors ``f`` (all in [0, 1])

    q ≻ p  ⇔  q_t ≤ f_t·p_t for every t  and  q_t < f_t·p_t for some t,

which is the paper's quantile-restricted condition (``c_RE ≤ q_β·c'_RE``) when one factor
is below 1. For non-negative points and ``f ≤ 1`` the relation is a strict partial order,
so the frontiers ("layers") are well defined: layer 1 holds the undominated points,
layer k the points undominated once layers 1..k−1 are removed; equivalently a point's
layer is one more than the longest chain of points dominating it.

:func:`pareto_layers` computes the first layers holding ``limit`` points without looking
at most of the pool: a point with ``limit`` or more dominators can never be in them
(its dominators fill the earlier layers), and a coarse grid histogram gives a cheap
lower bound on every point's number of dominators. The survivors are peeled frontier by
frontier: for two tasks each frontier is a sorted prefix-minimum query (O(r log r)), for
more tasks a blockwise sweep in order of coordinate sum (a dominator always has a
smaller sum). :func:`pareto_layers_reference` is the plain O(n²)-per-frontier peeling,
kept as the baseline for tests and benchmarks.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

_GRID_CELLS = 1 << 18
_BLOCK = 512


def dominates(q: NDArray[np.float64], p: NDArray[np.float64], factors: NDArray[np.float64]) -> bool:
    """Whether point ``q`` dominates point ``p`` (both shape (T,)) under ``factors``."""
    a = factors * p
    return bool(np.all(q <= a) and np.any(q < a))


def pareto_layers(
    points: NDArray[np.float64],
    limit: int | None = None,
    factors: NDArray[np.float64] | None = None,
) -> list[NDArray[np.intp]]:
    """The first Pareto layers of ``points`` (minimisation), exactly.

    Parameters
    ----------
    points : ndarray, shape (n, T)
        Non-negative coordinates (confidences).
    limit : int, optional
        Stop after the first layer that brings the total to at least ``limit`` points;
        every layer when None.
    factors : ndarray, shape (T,), optional
        Dominance factors in [0, 1] (default all 1: plain Pareto dominance).

    Returns
    -------
    list of ndarray of intp
        Row positions of each layer, each sorted ascending.
    """
    points = np.asarray(points, dtype=np.float64)
    n, n_tasks = points.shape
    f = np.ones(n_tasks) if factors is None else np.asarray(factors, dtype=np.float64)
    cand = np.arange(n)
    if limit is not None and limit < n:
        cand = np.flatnonzero(_dominator_lower_bound(points, f) < limit)
    layers: list[NDArray[np.intp]] = []
    total = 0
    peel = _frontier_2d if n_tasks == 2 else _frontier_nd
    if n_tasks == 2:
        cand = cand[np.lexsort((points[cand, 1], points[cand, 0]))]  # keep sorted by axis 0
        if np.all(f == 1.0):
            index = _layer_index_2d(points[cand])
            by_layer = np.argsort(index, kind="stable")
            bounds = np.searchsorted(
                index[by_layer], np.arange(index.max() + 2 if index.size else 1)
            )
            for k in range(bounds.size - 1):
                if limit is not None and total >= limit:
                    break
                layer = np.sort(cand[by_layer[bounds[k] : bounds[k + 1]]])
                layers.append(layer)
                total += layer.size
            return layers
    while cand.size and (limit is None or total < limit):
        front = peel(points[cand], f)
        layers.append(np.sort(cand[front]))
        total += int(front.sum())
        cand = cand[~front]
    return layers


def pareto_layers_reference(
    points: NDArray[np.float64],
    factors: NDArray[np.float64] | None = None,
    limit: int | None = None,
) -> list[NDArray[np.intp]]:
    """Pareto layers by plain peeling: all pairs compared on each frontier (O(n²) each).

    The baseline :func:`pareto_layers` is checked and benchmarked against; ``limit`` as
    there.
    """
    points = np.asarray(points, dtype=np.float64)
    f = np.ones(points.shape[1]) if factors is None else np.asarray(factors, dtype=np.float64)
    rest = np.arange(points.shape[0])
    layers: list[NDArray[np.intp]] = []
    total = 0
    while rest.size and (limit is None or total < limit):
        pts = points[rest]
        dominated = np.zeros(rest.size, dtype=bool)
        for start in range(0, rest.size, _BLOCK):
            a = pts[start : start + _BLOCK] * f  # (b, T)
            le = (pts[None, :, :] <= a[:, None, :]).all(axis=2)
            lt = (pts[None, :, :] < a[:, None, :]).any(axis=2)
            dominated[start : start + _BLOCK] = (le & lt).any(axis=1)
        layers.append(rest[~dominated])
        total += layers[-1].size
        rest = rest[dominated]
    return layers


def _frontier_2d(pts: NDArray[np.float64], f: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Undominated mask of ``pts`` (shape (r, 2), sorted by column 0)."""
    x, y = pts[:, 0], pts[:, 1]
    ax, ay = f[0] * x, f[1] * y
    prefix_min = np.minimum.accumulate(y)
    padded = np.concatenate([[np.inf], prefix_min])
    # min y over points with x ≤ ax, then over points with x < ax (for the equality case)
    m_le = padded[np.searchsorted(x, ax, side="right")]
    m_lt = padded[np.searchsorted(x, ax, side="left")]
    dominated = (m_le < ay) | ((m_le == ay) & (m_lt <= ay))
    return ~dominated


def _frontier_nd(pts: NDArray[np.float64], f: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Undominated mask of ``pts`` (shape (r, T)) by a blockwise sweep in sum order."""
    order = np.argsort(pts.sum(axis=1), kind="stable")
    sorted_pts = pts[order]
    undominated = np.zeros(pts.shape[0], dtype=bool)
    front = np.empty((0, pts.shape[1]))
    for start in range(0, sorted_pts.shape[0], _BLOCK):
        block = sorted_pts[start : start + _BLOCK]
        a = block * f
        # every dominator has a smaller coordinate sum, so it is in `front` (if undominated)
        # or earlier in this block; being dominated by any point is enough.
        others = np.concatenate([front, block])
        le = (others[None, :, :] <= a[:, None, :]).all(axis=2)
        lt = (others[None, :, :] < a[:, None, :]).any(axis=2)
        keep = ~(le & lt).any(axis=1)
        undominated[order[start : start + _BLOCK]] = keep
        front = np.concatenate([front, block[keep]])
    return undominated


def _dominator_lower_bound(
    points: NDArray[np.float64], f: NDArray[np.float64]
) -> NDArray[np.int64]:
    """For each point, a lower bound on how many points dominate it (shape (n,)).

    Counts the points lying in grid cells strictly below the cell of ``f·p`` on every
    axis of a regular grid over the points' range: those are strictly smaller on every
    coordinate, hence dominators. (Cell indices are a monotone function of the value,
    so a smaller cell index implies a strictly smaller value.)
    """
    n, n_tasks = points.shape
    per_axis = max(2, int(min(_GRID_CELLS, 4 * n) ** (1.0 / n_tasks)))
    cells_q = np.empty((n, n_tasks), dtype=np.intp)
    cells_a = np.empty((n, n_tasks), dtype=np.intp)
    for t in range(n_tasks):
        lo, hi = float(points[:, t].min()), float(points[:, t].max())
        scale = per_axis / (hi - lo) if hi > lo else 0.0
        cells_q[:, t] = np.minimum(((points[:, t] - lo) * scale).astype(np.intp), per_axis - 1)
        a = np.maximum(f[t] * points[:, t] - lo, 0.0)
        cells_a[:, t] = np.minimum((a * scale).astype(np.intp), per_axis - 1)
    shape = (per_axis,) * n_tasks
    counts = np.bincount(np.ravel_multi_index(cells_q.T, shape), minlength=per_axis**n_tasks)
    cum = counts.reshape(shape)
    for t in range(n_tasks):
        cum = np.cumsum(cum, axis=t)
    below = cells_a - 1
    valid = (below >= 0).all(axis=1)
    out = np.zeros(n, dtype=np.int64)
    out[valid] = cum[tuple(below[valid].T)]
    return out


def _layer_index_2d(pts: NDArray[np.float64]) -> NDArray[np.intp]:
    """0-based plain-Pareto layer of each point of ``pts`` (shape (r, 2), sorted by (x, y)).

    One sweep in (x, y) order: every dominator of a point comes before it, and layer k's
    "tail" — its point with the smallest (y, x) so far — dominates the point exactly when
    the tail is lexicographically smaller. Tails increase with k, so a binary search finds
    the first layer without a dominator: O(r log r).
    """
    from bisect import bisect_left

    tails: list[tuple[float, float]] = []
    out = np.empty(pts.shape[0], dtype=np.intp)
    for i, (x, y) in enumerate(pts.tolist()):
        key = (y, x)
        k = bisect_left(tails, key)
        if k == len(tails):
            tails.append(key)
        else:
            tails[k] = key
        out[i] = k
    return out


def layer_order(points: NDArray[np.float64], layer: NDArray[np.intp]) -> NDArray[np.intp]:
    """``layer``'s positions ordered by the first axis, then the next axes, then position."""
    keys = [layer] + [points[layer, t] for t in range(points.shape[1] - 1, -1, -1)]
    return layer[np.lexsort(keys)]


def thin(ordered: NDArray[np.intp], p: int) -> NDArray[np.intp]:
    """Every ⌊f/p⌋-th of the ``f`` ordered points, starting with the first, ``p`` in all."""
    step = ordered.size // p
    return ordered[: step * p : step]
