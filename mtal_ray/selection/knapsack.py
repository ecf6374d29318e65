"""Exact multiple-choice knapsack: the one solver behind every BLP formulation.

    max Σ_j p_j z_j   s.t.  Σ_j w_j z_j ≤ B,   Σ_{j∈G} z_j ≤ 1 for every group G,  z ∈ {0,1}

A 0/1 knapsack is the special case of one item per group; UDJS has one group per sample
and one item per useful task subset.

Large instances are first shrunk, exactly, by Lagrangian reduced-cost fixing. For any
λ ≥ 0 let μ_G = max(0, max_{j∈G} p_j − λ w_j) and U(λ) = λB + Σ_G μ_G (an upper bound);
every feasible z then satisfies

    value(z) = U − Σ_{j chosen} (μ_G(j) − p_j + λ w_j) − Σ_{G unused} μ_G − λ·(B − Σ w z).

All subtracted terms are non-negative, so a solution at least as good as a known
incumbent V uses no item whose reduced cost exceeds U − V and leaves no group with
μ_G > U − V unused. λ minimising U (the LP bound) is found by bisection, the incumbent
by rounding the LP solution down and filling greedily; what remains free is usually a
small core that CBC solves in well under a second. The incumbent is always feasible in
the reduced problem, so the answer is never worse than the greedy one, and it is optimal
whenever CBC proves the core optimal; otherwise ``bound`` says how far it can be.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import mip
import numpy as np
from numpy.typing import NDArray

_TOL = 1e-9
_MAX_CUTS = 25  # re-solves after CBC returns a choice over the budget (see _solve_core)
_DP_CELLS = 100_000_000  # group × capacity choice table of the exact DP (bytes)


@dataclass(frozen=True)
class KnapsackSolution:
    """The chosen items of a multiple-choice knapsack.

    Attributes
    ----------
    items : ndarray of intp
        Indices of chosen items (at most one per group), ascending.
    objective : float
        Σ profit of the chosen items.
    weight : float
        Σ weight of the chosen items: ≤ budget·(1 + 1e-9) (costs are float sums, so a
        choice over the budget by rounding noise only counts as within it).
    bound : float
        A proven upper bound on the optimum.
    optimal : bool
        Whether ``objective`` is proven optimal (up to 1e-9 relative).
    """

    items: NDArray[np.intp]
    objective: float
    weight: float
    bound: float
    optimal: bool

    @property
    def gap(self) -> float:
        """Upper bound minus objective (0 when optimal)."""
        return 0.0 if self.optimal else max(0.0, self.bound - self.objective)


def solve_mckp(
    profit: NDArray[np.float64],
    weight: NDArray[np.float64],
    group: NDArray[np.intp],
    budget: float,
    *,
    time_limit: float = 60.0,
    mip_gap: float = 1e-4,
    reduce: bool = True,
) -> KnapsackSolution:
    """Solve a multiple-choice 0/1 knapsack exactly (within ``time_limit``).

    Parameters
    ----------
    profit : ndarray, shape (J,)
        Item profits; items with profit ≤ 0 are never chosen.
    weight : ndarray, shape (J,)
        Item weights, positive.
    group : ndarray of intp, shape (J,)
        Group of each item, non-decreasing (items of a group are contiguous).
    budget : float
    time_limit : float
        Seconds CBC may spend on the reduced problem.
    mip_gap : float
        Relative optimality tolerance: stop once (bound − objective) ≤ mip_gap·bound
        (CBC's default is 1e-4; 0 asks for a proof of exact optimality, which can take long
        on knapsacks with many near-equal solutions).
    reduce : bool
        Apply reduced-cost fixing first (False hands the whole problem to CBC).

    Returns
    -------
    KnapsackSolution
    """
    profit = np.asarray(profit, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    group = np.asarray(group, dtype=np.intp)
    if (weight <= 0).any():
        raise ValueError("knapsack weights must be positive")
    # one feasibility rule everywhere: float rounding noise over the budget is within it
    budget = float(budget) + _TOL * max(1.0, abs(float(budget)))
    useful = np.flatnonzero((profit > 0) & (weight <= budget))
    p, w, g = profit[useful], weight[useful], group[useful]
    if not useful.size:
        return KnapsackSolution(np.empty(0, dtype=np.intp), 0.0, 0.0, 0.0, True)
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    gid = np.cumsum(np.r_[False, g[1:] != g[:-1]])  # dense group index per item

    lam, bound = _lagrangian(p, w, starts, gid, budget)
    incumbent = _greedy(p, w, starts, gid, budget, lam)
    inc_value = float(p[incumbent].sum())
    if not reduce:
        free = np.arange(p.size)
        forced_groups = np.zeros(starts.size, dtype=bool)
        bound = math.inf
    else:
        gap = bound - inc_value
        tol = _TOL * max(1.0, abs(bound))
        if gap <= tol:
            return _solution(useful, incumbent, p, w, bound, True)
        mu = np.maximum(np.maximum.reduceat(p - lam * w, starts), 0.0)
        reduced_cost = mu[gid] - (p - lam * w)
        free = np.flatnonzero(reduced_cost <= gap + tol)
        forced_groups = mu > gap + tol

    exact = _solve_core_dp(p, w, gid, budget, free, forced_groups) if _integral(w) else None
    if exact is not None:
        chosen, value = exact, float(p[exact].sum())
        mip_bound, optimal = value, True
    elif reduce and bound - inc_value <= mip_gap * abs(bound):
        chosen, value, mip_bound, optimal = incumbent, inc_value, bound, False
    else:
        chosen, value, mip_bound, optimal = _solve_core(
            p, w, gid, budget, free, forced_groups, incumbent, time_limit, mip_gap
        )
    over = float(w[chosen].sum()) > budget if len(chosen) else False
    if over or value < inc_value - _TOL:  # nothing (valid) from CBC in time: keep the greedy one
        chosen, value = incumbent, inc_value
        mip_bound, optimal = math.inf, False  # CBC's bound was about an invalid answer
    best_bound = min(bound, mip_bound) if reduce else mip_bound
    if math.isfinite(best_bound):
        optimal = optimal or best_bound - value <= _TOL * max(1.0, abs(best_bound))
    return _solution(useful, chosen, p, w, max(best_bound, value), optimal)


def _solution(useful, chosen, p, w, bound, optimal) -> KnapsackSolution:  # type: ignore[no-untyped-def]
    chosen = np.sort(np.asarray(chosen, dtype=np.intp))
    return KnapsackSolution(
        items=useful[chosen],
        objective=float(p[chosen].sum()),
        weight=float(w[chosen].sum()),
        bound=float(bound),
        optimal=bool(optimal),
    )


def _best_per_group(
    p: NDArray[np.float64],
    w: NDArray[np.float64],
    starts: NDArray[np.intp],
    gid: NDArray[np.intp],
    lam: float,
    *,
    with_arg: bool = True,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.intp] | None]:
    """μ_G(λ), the weight of each group's choice, and the choice (-1 when μ_G ≤ 0).

    A group's choice maximises p − λw; among ties the lightest (then the first) item.
    """
    red = p - lam * w
    mu = np.maximum.reduceat(red, starts)
    at_max = red >= mu[gid]
    lightest = np.minimum.reduceat(np.where(at_max, w, np.inf), starts)
    used = np.where(mu > 0, lightest, 0.0)
    if not with_arg:
        return np.maximum(mu, 0.0), used, None
    hits = np.flatnonzero(at_max & (w == lightest[gid]))
    groups, first = np.unique(gid[hits], return_index=True)
    arg = np.full(starts.size, -1, dtype=np.intp)
    arg[groups] = hits[first]
    arg[mu <= 0] = -1
    return np.maximum(mu, 0.0), used, arg


def _lagrangian(p, w, starts, gid, budget) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """λ ≥ 0 (approximately) minimising U(λ), and the bound U there."""

    def bound_and_weight(lam: float) -> tuple[float, float]:
        mu, used, _ = _best_per_group(p, w, starts, gid, lam, with_arg=False)
        return lam * budget + float(mu.sum()), float(used.sum())

    u0, w0 = bound_and_weight(0.0)
    if w0 <= budget:
        return 0.0, u0
    lo, hi = 0.0, float((p / w).max())
    best = (u0, 0.0)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        u, used = bound_and_weight(mid)
        best = min(best, (u, mid))
        if used > budget:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break
    u_hi, _ = bound_and_weight(hi)
    best = min(best, (u_hi, hi))
    return best[1], best[0]


def _greedy(p, w, starts, gid, budget, lam) -> NDArray[np.intp]:  # type: ignore[no-untyped-def]
    """A feasible solution: the LP's choice at λ (shrunk to fit), then greedy upgrades."""
    _, _, arg = _best_per_group(p, w, starts, gid, lam)
    assert arg is not None
    current = arg.copy()
    chosen = current[current >= 0]
    if w[chosen].sum() > budget:  # λ slightly below the breakpoint: drop least efficient
        eff = p[chosen] / w[chosen]
        keep = np.argsort(-eff, kind="stable")
        csum = np.cumsum(w[chosen][keep])
        drop = chosen[keep[np.searchsorted(csum, budget, side="right") :]]
        current[gid[drop]] = -1
    remaining = budget - float(w[current[current >= 0]].sum())
    cur_p = np.where(current >= 0, p[np.maximum(current, 0)], 0.0)
    cur_w = np.where(current >= 0, w[np.maximum(current, 0)], 0.0)
    d_p = p - cur_p[gid]
    d_w = w - cur_w[gid]
    cand = np.flatnonzero((d_p > 0) & (d_w <= remaining))
    if not cand.size:
        return np.sort(current[current >= 0])
    eff = d_p[cand] / np.maximum(d_w[cand], 1e-12)
    cand = cand[np.argsort(-eff, kind="stable")]
    for j in cand.tolist():
        grp = gid[j]
        dp = p[j] - cur_p[grp]
        dw = w[j] - cur_w[grp]
        if dp > 0 and dw <= remaining:
            current[grp] = j
            cur_p[grp], cur_w[grp] = p[j], w[j]
            remaining -= dw
    return np.sort(current[current >= 0])


def _integral(w: NDArray[np.float64]) -> bool:
    return bool(np.all(w == np.round(w)) and w.size and w.max() < 2**31)


def _solve_core_dp(p, w, gid, budget, free, forced_groups) -> NDArray[np.intp] | None:  # type: ignore[no-untyped-def]
    """Exact dynamic programme over capacity for integer weights, or None if too large.

    Every solution at least as good as the incumbent uses free items only and one item of
    every forced group, so the best such solution is the optimum. A forced group's
    lightest item is paid up front (its items then weigh only their excess) and the group
    has no "skip" option, which keeps the capacity axis short. ``best[c]`` is the best
    value with extra weight ≤ c; each group records its item (or none) at every capacity.
    """
    core_gid = gid[free]
    bounds = np.flatnonzero(np.r_[True, core_gid[1:] != core_gid[:-1], True])
    starts = bounds[:-1]
    groups = core_gid[starts]
    forced = forced_groups[groups]
    base = np.where(forced, np.minimum.reduceat(w[free], starts), 0.0)
    cap = math.floor(budget - float(base.sum()))
    n_groups = starts.size
    if cap < 0 or n_groups * (cap + 1) > _DP_CELLS:
        return None
    extra = (w[free] - base[np.repeat(np.arange(n_groups), np.diff(bounds))]).astype(np.int64)
    dtype = np.int8 if np.diff(bounds).max() < 127 else np.int16
    choices = np.zeros((n_groups, cap + 1), dtype=dtype)
    best = np.zeros(cap + 1)
    for k, (a, b) in enumerate(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)):
        new = np.full(cap + 1, -np.inf) if forced[k] else best.copy()
        for i in range(a, b):
            wi, pi = int(extra[i]), float(p[free[i]])
            if wi > cap:
                continue
            cand = best[: cap + 1 - wi] + pi
            better = cand > new[wi:]
            new[wi:][better] = cand[better]
            choices[k, wi:][better] = i - a + 1
        best = new
    if not np.isfinite(best[cap]):
        return None
    picked: list[int] = []
    c = cap
    for k in range(n_groups - 1, -1, -1):
        i = int(choices[k, c])
        if i:
            picked.append(int(free[bounds[k] + i - 1]))
            c -= int(extra[bounds[k] + i - 1])
    return np.array(sorted(picked), dtype=np.intp)


def _solve_core(p, w, gid, budget, free, forced_groups, incumbent, time_limit, mip_gap):  # type: ignore[no-untyped-def]
    """CBC on the free items; forced groups must use one of their free items."""
    fixed_weight = 0.0
    fixed: list[int] = []
    # a forced group with a single free item: that item is in every better solution
    free_groups, counts = np.unique(gid[free], return_counts=True)
    single = np.zeros(forced_groups.size, dtype=bool)
    single[free_groups[counts == 1]] = True
    fix_mask = forced_groups[gid[free]] & single[gid[free]]
    fixed = free[fix_mask].tolist()
    fixed_weight = float(w[fixed].sum()) if fixed else 0.0
    fixed_value = float(p[fixed].sum()) if fixed else 0.0
    core = free[~fix_mask]
    if not core.size:
        return np.array(fixed, dtype=np.intp), fixed_value, fixed_value, True

    model = mip.Model(sense=mip.MAXIMIZE, solver_name=mip.CBC)
    model.verbose = 0
    model.threads = 1
    model.max_mip_gap = mip_gap
    model.max_mip_gap_abs = 1e-9
    z = [model.add_var(var_type=mip.BINARY) for _ in range(core.size)]
    pc, wc = p[core].tolist(), w[core].tolist()
    model.objective = mip.xsum(pc[i] * z[i] for i in range(core.size))
    model += mip.xsum(wc[i] * z[i] for i in range(core.size)) <= budget - fixed_weight
    core_gid = gid[core]
    bounds = np.flatnonzero(np.r_[True, core_gid[1:] != core_gid[:-1], True])
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        grp = int(core_gid[a])
        if forced_groups[grp]:
            model += mip.xsum(z[a:b]) == 1
        elif b - a > 1:
            model += mip.xsum(z[a:b]) <= 1
    position = {int(j): i for i, j in enumerate(core.tolist())}
    start = [(z[position[int(j)]], 1.0) for j in incumbent if int(j) in position]
    if start:
        model.start = start
    deadline = time.monotonic() + max(time_limit, 0.1)
    capacity = budget - fixed_weight
    for _ in range(_MAX_CUTS):
        status = model.optimize(max_seconds=max(deadline - time.monotonic(), 0.1))
        if status not in (mip.OptimizationStatus.OPTIMAL, mip.OptimizationStatus.FEASIBLE):
            return np.array(fixed, dtype=np.intp), -math.inf, math.inf, False
        chosen = [i for i in range(core.size) if z[i].x is not None and z[i].x >= 0.5]
        if float(w[core[chosen]].sum()) <= capacity:
            break
        # CBC's feasibility tolerance (~1e-7, absolute) admitted a choice over the budget:
        # cut off exactly that choice and solve again
        model += mip.xsum(z[i] for i in chosen) <= len(chosen) - 1
    else:
        return np.array(fixed, dtype=np.intp), -math.inf, math.inf, False
    items = np.array(fixed + [int(core[i]) for i in chosen], dtype=np.intp)
    value = float(p[items].sum())
    optimal = status == mip.OptimizationStatus.OPTIMAL and mip_gap == 0
    mip_bound = fixed_value + float(model.objective_bound)
    return items, value, mip_bound, optimal
