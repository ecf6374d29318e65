"""Budgeted selection by binary linear programming (paper §7.1).

Every formulation is a multiple-choice knapsack solved exactly by
:func:`~mtal_ray.selection.knapsack.solve_mckp` (reduced-cost fixing, then an exact DP for
integer costs or CBC through python-mip). Decision methods: calling these every round is
BLP_AL, calling one once for the whole budget is BLP; greedy selection under a budget
(GRD_AL) is any ranking method's ``select(budget=...)``.

- :class:`BlpUdjs` — unrestricted disjoint sets: any sample on any subset of tasks.
  The paper writes it with X_t(x) and Y(x) (:func:`udjs_direct`, kept as the baseline);
  here each sample is a group whose items are its task subsets S, with gain
  Σ_{t∈S}(1 − c_t) and cost Σ_{t∈S} cost_t − (|S|−1)·m, and subsets another subset beats
  on both cost and gain are dropped. The optimum is the same; the LP relaxation is far
  tighter, so it solves orders of magnitude faster.
- :class:`BlpEqb` — equal-budget disjoint sets: the remaining budget is split equally,
  one knapsack per task; a sample already chosen for another task costs only its
  marginal cost_t − m. Re-solved until a round adds nothing; then each task in turn may
  use the whole rest.
- :class:`BlpJoint` — every selected sample on every task, gain 1 − aggregated confidence
  (AVG, MAX, MIN) or the RRF score (the paper does not define a confidence for RRF; any
  positive rescaling of the gain gives the same knapsack. RRF scores are nearly flat past
  the top ranks, so per unit of cost the knapsack leans towards cheap, short sentences).
- :class:`BlpStcs` — every task annotated, gain from one task's confidence.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping
from typing import Any, ClassVar

import mip
import numpy as np
from numpy.typing import NDArray

from mtal_ray.selection.base import (
    ParameterError,
    Selector,
    TaskMixin,
    WeightedMixin,
    check_budget,
)
from mtal_ray.selection.cost import CostModel, TaskCosts
from mtal_ray.selection.knapsack import KnapsackSolution, solve_mckp
from mtal_ray.selection.result import SelectionResult
from mtal_ray.selection.scored import RRF_K, rrf_scores
from mtal_ray.selection.table import ConfidenceTable

_MAX_PRUNE_SUBSETS = 15  # pairwise subset-dominance pruning up to T = 4


@dataclasses.dataclass(frozen=True, repr=False)
class BlpSelector(Selector):
    """A budgeted BLP method; ``time_limit`` (s) bounds each solver call."""

    budgeted: ClassVar[bool] = True

    time_limit: float = 60.0
    mip_gap: float = 1e-4

    def __post_init__(self) -> None:
        if not self.time_limit > 0:
            raise ParameterError(
                f"{{time_limit}} must be positive, got {self.time_limit}", "time_limit"
            )
        if not 0 <= self.mip_gap < 1:
            raise ParameterError(f"{{mip_gap}} must lie in [0, 1), got {self.mip_gap}", "mip_gap")
        super().__post_init__()

    def _solve(self, gain, cost, group, budget) -> KnapsackSolution:  # type: ignore[no-untyped-def]
        return solve_mckp(
            gain, cost, group, budget, time_limit=self.time_limit, mip_gap=self.mip_gap
        )


def _ordered(
    ct: ConfidenceTable, rows: NDArray[np.intp], gain: NDArray[np.float64]
) -> NDArray[np.intp]:
    """Selected rows, highest gain first, ties by id."""
    return rows[np.lexsort((rows, -gain))]


def _subsets(n_tasks: int) -> NDArray[np.bool_]:
    """Every non-empty task subset as a mask, shape (2^T − 1, T), by increasing bitmask."""
    return np.array(
        [[(s >> t) & 1 for t in range(n_tasks)] for s in range(1, 2**n_tasks)], dtype=bool
    )


@dataclasses.dataclass(frozen=True, repr=False)
class BlpUdjs(BlpSelector):
    """UDJS: each sample annotated on the subset of tasks that pays most (§7.1 a)."""

    name: ClassVar[str] = "blp-udjs"

    def _select_budget(
        self, ct: ConfidenceTable, budget: float, cost_model: CostModel
    ) -> SelectionResult:
        costs = cost_model.costs(ct)
        check_budget(budget, costs.per_task.min(axis=1), "single-task")
        masks = _subsets(len(ct.tasks))  # (K, T)
        gain = (1.0 - ct.ec_matrix()) @ masks.T  # (n, K)
        size = masks.sum(axis=1)
        cost = costs.per_task @ masks.T - np.outer(costs.shared, size - 1)  # (n, K)
        keep = _undominated(gain, cost)
        rows, subset = np.nonzero(keep)  # row-major: each sample's items contiguous
        sol = self._solve(gain[rows, subset], cost[rows, subset], rows, budget)
        sel_rows, sel_sets = rows[sol.items], subset[sol.items]
        order = np.lexsort((sel_rows, -gain[sel_rows, sel_sets]))
        sel_rows, sel_sets = sel_rows[order], sel_sets[order]
        ids = ct.take_ids(sel_rows)
        tasks = {
            i: [t for t, on in zip(ct.tasks, masks[s], strict=True) if on]
            for i, s in zip(ids, sel_sets.tolist(), strict=True)
        }
        return SelectionResult(repr(self), ids, tasks, sol.objective, sol.weight, sol.gap)


def _undominated(gain: NDArray[np.float64], cost: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Mask of each sample's subsets that no other subset beats (cost ≤, gain ≥).

    Exact duplicates keep the lowest subset index. Subsets with no gain are dropped.
    """
    keep = gain > 0
    n_sets = gain.shape[1]
    if n_sets > _MAX_PRUNE_SUBSETS:
        return keep
    for a, b in itertools.permutations(range(n_sets), 2):
        beats = (cost[:, a] <= cost[:, b]) & (gain[:, a] >= gain[:, b])
        strict = (cost[:, a] < cost[:, b]) | (gain[:, a] > gain[:, b]) | (a < b)
        keep[:, b] &= ~(beats & strict)
    return keep


def udjs_direct(
    ct: ConfidenceTable, budget: float, costs: TaskCosts, *, time_limit: float = 60.0
) -> tuple[dict[str, list[str]], float, float]:
    """The paper's X_t(x)/Y(x) UDJS formulation, solved by CBC as written (the baseline).

    Returns
    -------
    tasks : dict of id to tasks
    objective : float
    gap : float
        CBC's bound minus objective.
    """
    n_tasks = len(ct.tasks)
    ec = ct.ec_matrix()
    joint = costs.joint
    model = mip.Model(sense=mip.MAXIMIZE, solver_name=mip.CBC)
    model.verbose = 0
    model.threads = 1
    x = [[model.add_var(var_type=mip.BINARY) for _ in range(n_tasks)] for _ in range(ct.n)]
    y = [model.add_var(var_type=mip.BINARY) for _ in range(ct.n)]
    unc = (1.0 - ec).tolist()
    per_task = costs.per_task.tolist()
    joint_l = joint.tolist()
    model.objective = mip.xsum(unc[i][t] * x[i][t] for i in range(ct.n) for t in range(n_tasks))
    model += (
        mip.xsum(per_task[i][t] * (x[i][t] - y[i]) for i in range(ct.n) for t in range(n_tasks))
        + mip.xsum(joint_l[i] * y[i] for i in range(ct.n))
        <= budget
    )
    for i in range(ct.n):
        model += mip.xsum(x[i]) * (1.0 / n_tasks) >= y[i]
    model.optimize(max_seconds=time_limit)
    chosen: dict[str, list[str]] = {}
    ids = ct.ids.to_pylist()
    for i in range(ct.n):
        on = [t for k, t in enumerate(ct.tasks) if (x[i][k].x or 0) >= 0.5]
        if on:
            chosen[ids[i]] = on
    value = float(model.objective_value or 0.0)
    return chosen, value, float(model.objective_bound) - value


@dataclasses.dataclass(frozen=True, repr=False)
class BlpEqb(BlpSelector):
    """EQB-DJS: the budget split equally between the tasks, re-solved as joint costs free
    budget (§7.1 b)."""

    name: ClassVar[str] = "blp-eqb"
    max_rounds: int = 50

    def _select_budget(
        self, ct: ConfidenceTable, budget: float, cost_model: CostModel
    ) -> SelectionResult:
        costs = cost_model.costs(ct)
        check_budget(budget, costs.per_task.min(axis=1), "single-task")
        n_tasks = len(ct.tasks)
        unc = 1.0 - ct.ec_matrix()
        chosen = np.zeros((ct.n, n_tasks), dtype=bool)
        bound_gap = 0.0

        def solve_task(t: int, share: float) -> NDArray[np.intp]:
            nonlocal bound_gap
            rows = np.flatnonzero(~chosen[:, t])
            marginal = costs.per_task[rows, t] - np.where(
                chosen[rows].any(axis=1), costs.shared[rows], 0.0
            )
            free = marginal <= 0  # e.g. NER without entities once the sentence is read
            paid = np.flatnonzero(~free)
            sol = self._solve(unc[rows[paid], t], marginal[paid], np.arange(paid.size), share)
            bound_gap += sol.gap
            return np.concatenate([rows[free & (unc[rows, t] > 0)], rows[paid[sol.items]]])

        for _ in range(self.max_rounds):
            rest = budget - float(costs.subset(chosen).sum())
            picks = [solve_task(t, rest / n_tasks) for t in range(n_tasks)]
            for t, rows in enumerate(picks):
                chosen[rows, t] = True
            if not any(p.size for p in picks):
                break
        for t in range(n_tasks):  # what an equal split cannot use, one task may
            rest = budget - float(costs.subset(chosen).sum())
            chosen[solve_task(t, rest), t] = True

        rows = np.flatnonzero(chosen.any(axis=1))
        gain = (unc * chosen).sum(axis=1)
        rows = _ordered(ct, rows, gain[rows])
        ids = ct.take_ids(rows)
        tasks = {
            i: [t for t, on in zip(ct.tasks, chosen[r], strict=True) if on]
            for i, r in zip(ids, rows.tolist(), strict=True)
        }
        spent = float(costs.subset(chosen).sum())
        return SelectionResult(repr(self), ids, tasks, float(gain.sum()), spent, bound_gap)


AGGREGATES = ("avg", "max", "min", "rrf")
_UNWEIGHTED = ("max", "min")


@dataclasses.dataclass(frozen=True, repr=False)
class BlpJoint(WeightedMixin, BlpSelector):
    """Joint-task selection (§7.1 c–f): every sample on every task, gain from an aggregate."""

    name: ClassVar[str] = "blp-joint"
    aggregate: str = "avg"

    def __repr__(self) -> str:
        text = super().__repr__()
        if "aggregate=" in text:
            return text
        return text.replace(
            "(", f"(aggregate={self.aggregate!r}" + ("" if text.endswith("()") else ", "), 1
        )

    @classmethod
    def accepts(cls, fixed: Mapping[str, Any] | None = None) -> frozenset[str]:
        """As :meth:`Selector.accepts`; the MAX and MIN aggregates take no task weights."""
        params = super().accepts(fixed)
        if (fixed or {}).get("aggregate") in _UNWEIGHTED:
            params -= {"weights", "beta", "task"}
        return params

    def __post_init__(self) -> None:
        if self.aggregate not in AGGREGATES:
            raise ParameterError(
                f"unknown {{aggregate}} {self.aggregate!r}; choose one of {', '.join(AGGREGATES)}",
                "aggregate",
            )
        if self.aggregate in _UNWEIGHTED:
            given = [p for p in ("weights", "beta", "task") if getattr(self, p) is not None]
            if given:
                raise ParameterError(
                    f"blp-joint-{self.aggregate} takes no task weights: it does not take "
                    + ", ".join(f"{{{p}}}" for p in given),
                    *given,
                )
        super().__post_init__()

    def gains(self, ct: ConfidenceTable) -> NDArray[np.float64]:
        """Per-sample gain, shape (n,): 1 − aggregated confidence, or the RRF score."""
        ec = ct.ec_matrix()
        if self.aggregate == "rrf":
            return rrf_scores(ec, self.task_weights(ct), RRF_K)
        if self.aggregate == "avg":
            return 1.0 - ec @ self.task_weights(ct)
        return 1.0 - (ec.max(axis=1) if self.aggregate == "max" else ec.min(axis=1))

    def _select_budget(
        self, ct: ConfidenceTable, budget: float, cost_model: CostModel
    ) -> SelectionResult:
        return _joint_knapsack(self, ct, budget, cost_model, self.gains(ct))


@dataclasses.dataclass(frozen=True, repr=False)
class BlpStcs(TaskMixin, BlpSelector):
    """STCS (§7.1 g–j): every sample on every task, gain from ``task``'s confidence only."""

    name: ClassVar[str] = "blp-stcs"

    def _select_budget(
        self, ct: ConfidenceTable, budget: float, cost_model: CostModel
    ) -> SelectionResult:
        return _joint_knapsack(self, ct, budget, cost_model, 1.0 - ct.ec(self.task))


def _joint_knapsack(
    sel: BlpSelector,
    ct: ConfidenceTable,
    budget: float,
    cost_model: CostModel,
    gain: NDArray[np.float64],
) -> SelectionResult:
    joint = cost_model.costs(ct).joint
    check_budget(budget, joint, "joint")
    sol = sel._solve(gain, joint, np.arange(ct.n), budget)
    rows = _ordered(ct, sol.items, gain[sol.items])
    return SelectionResult(repr(sel), ct.take_ids(rows), None, sol.objective, sol.weight, sol.gap)
