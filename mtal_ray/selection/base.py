"""Selector base classes: request validation, count-based and budgeted (GRD_AL) selection."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from mtal_ray.errors import SelectionError
from mtal_ray.selection.cost import CostModel
from mtal_ray.selection.ranking import greedy_fill, smallest
from mtal_ray.selection.result import SelectionResult
from mtal_ray.selection.table import ConfidenceTable, load_table
from mtal_ray.selection.weights import resolve_weights


@dataclasses.dataclass(frozen=True, repr=False)
class Selector:
    """A selection method with its parameters; prints as its constructor.

    Subclasses are frozen dataclasses; :meth:`select` is the one entry point.
    """

    #: CLI / registry name, e.g. ``"mt-avg"``.
    name: ClassVar[str] = ""

    def __repr__(self) -> str:
        args = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            default = f.default if f.default is not dataclasses.MISSING else None
            if value != default:
                args.append(f"{f.name}={value!r}")
        return f"{type(self).__name__}({', '.join(args)})"

    def select(
        self,
        table: Any,
        *,
        n: int | None = None,
        budget: float | None = None,
        cost_model: CostModel | None = None,
    ) -> SelectionResult:
        """Select ``n`` samples, or samples within ``budget``, from ``table``.

        Parameters
        ----------
        table : ConfidenceTable, pyarrow.Table, Parquet path or dict of columns
        n : int, optional
            How many samples (count-based selection).
        budget : float, optional
            Annotation budget (budgeted selection); exactly one of ``n``/``budget``.
        cost_model : CostModel, optional
            Costs where the table has no cost columns (paper defaults otherwise).

        Returns
        -------
        SelectionResult
        """
        ct = load_table(table)
        self.validate(ct)
        if (n is None) == (budget is None):
            raise SelectionError(f"{self!r}: give exactly one of n and budget")
        if n is not None:
            if isinstance(n, bool) or int(n) != n or n <= 0:
                raise SelectionError(f"{self!r}: n must be a positive integer, got {n}")
            if n > ct.n:
                raise SelectionError(f"{self!r}: n={n} exceeds the pool size {ct.n}")
            return self._select_n(ct, int(n))
        assert budget is not None
        if not np.isfinite(budget) or budget <= 0:
            raise SelectionError(f"{self!r}: budget must be a positive number, got {budget}")
        return self._select_budget(ct, float(budget), cost_model or CostModel())

    def validate(self, ct: ConfidenceTable) -> None:
        """Check the parameters against the table (tasks, columns); raise SelectionError."""

    def _select_n(self, ct: ConfidenceTable, n: int) -> SelectionResult:
        raise SelectionError(f"{self.name} selects under a budget: give budget, not n")

    def _select_budget(
        self, ct: ConfidenceTable, budget: float, cost_model: CostModel
    ) -> SelectionResult:
        raise SelectionError(f"{self.name} selects a number of samples: give n, not budget")


def check_budget(budget: float, costs: NDArray[np.float64], what: str) -> None:
    """Raise SelectionError when not even the cheapest sample fits ``budget``."""
    cheapest = float(costs.min())
    if budget < cheapest:
        raise SelectionError(
            f"budget {budget:g} is below the cheapest sample's {what} cost {cheapest:g}"
        )


@dataclasses.dataclass(frozen=True, repr=False)
class RankingSelector(Selector):
    """A method that orders the pool; n takes a prefix, a budget walks it greedily (GRD_AL).

    Subclasses implement :meth:`priority`. Single-task methods set ``single_task`` and are
    annotated (and costed) on their ``task`` only; the others on every task.
    """

    single_task: ClassVar[bool] = False

    def priority(self, ct: ConfidenceTable, k: int | None) -> NDArray[np.intp]:
        """Row positions in selection order: at least the first ``k`` (all when None)."""
        raise NotImplementedError

    def choose(self, ct: ConfidenceTable, n: int) -> NDArray[np.intp]:
        """The ``n`` rows to select, in selection order."""
        return self.priority(ct, n)[:n]

    def _tasks(self, ct: ConfidenceTable, rows: NDArray[np.intp]) -> dict[str, list[str]] | None:
        if not self.single_task:
            return None
        task = getattr(self, "task", None)
        return {i: [str(task)] for i in ct.take_ids(rows)}

    def _select_n(self, ct: ConfidenceTable, n: int) -> SelectionResult:
        rows = self.choose(ct, n)
        return SelectionResult(repr(self), ct.take_ids(rows), self._tasks(ct, rows))

    def _select_budget(
        self, ct: ConfidenceTable, budget: float, cost_model: CostModel
    ) -> SelectionResult:
        costs = cost_model.costs(ct)
        cost = costs.task(str(getattr(self, "task", None))) if self.single_task else costs.joint
        check_budget(budget, cost, "task" if self.single_task else "joint")
        # the longest affordable selection bounds how far the greedy walk must look;
        # look further only if the walk ends with budget left for an unseen sample
        k = int(np.searchsorted(np.cumsum(np.sort(cost)), budget, side="right"))
        while True:
            order = self.priority(ct, k)
            rows, spent = greedy_fill(order, cost, budget)
            if order.size >= ct.n:
                break
            unseen = np.ones(ct.n, dtype=bool)
            unseen[order] = False
            if budget - spent < float(cost[unseen].min()):
                break
            k = min(ct.n, 4 * max(k, order.size))
        return SelectionResult(repr(self), ct.take_ids(rows), self._tasks(ct, rows), cost=spent)


@dataclasses.dataclass(frozen=True, repr=False)
class ScoreSelector(RankingSelector):
    """Ranks by a per-sample score, lowest (least confident) first, ties by id."""

    def scores(self, ct: ConfidenceTable) -> NDArray[np.float64]:
        """Per-sample score, shape (n,); lower is selected first."""
        raise NotImplementedError

    def priority(self, ct: ConfidenceTable, k: int | None) -> NDArray[np.intp]:
        return smallest(self.scores(ct), k)


@dataclasses.dataclass(frozen=True, repr=False)
class WeightedMixin:
    """Task weights as ``weights`` or the paper's ``beta`` on ``task`` (§6.1)."""

    weights: dict[str, float] | None = None
    beta: float | None = None
    task: str | None = None

    def __post_init__(self) -> None:
        if self.beta is not None and not 0.0 <= self.beta <= 1.0:
            raise SelectionError(f"beta must lie in [0, 1], got {self.beta}")

    def task_weights(self, ct: ConfidenceTable) -> NDArray[np.float64]:
        """Normalised weights in the table's task order, shape (T,)."""
        if self.task is not None and self.beta is None:
            raise SelectionError(
                f"{type(self).__name__}: task {self.task!r} given without beta (use beta with "
                "task, or weights)"
            )
        return resolve_weights(ct.tasks, weights=self.weights, beta=self.beta, task=self.task)


@dataclasses.dataclass(frozen=True, repr=False)
class TaskMixin:
    """A method driven by one named task."""

    task: str = ""

    def validate(self, ct: ConfidenceTable) -> None:
        if not self.task:
            raise SelectionError(
                f"{type(self).__name__} needs a task (one of {', '.join(ct.tasks)})"
            )
        ct.check_task(self.task)
