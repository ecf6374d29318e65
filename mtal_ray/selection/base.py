"""Selector base classes: request validation, count-based and budgeted (GRD_AL) selection.

A selector's parameters are its dataclass fields: :meth:`Selector.accepts` lists them
(the registry refuses any other request parameter), and every check that needs no
confidence table runs when the selector is built (``__post_init__``), so a config that
names a bad combination fails when it is loaded, not at the first selection.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from mtal_ray.errors import SelectionError
from mtal_ray.selection.cost import CostModel
from mtal_ray.selection.ranking import greedy_fill, smallest
from mtal_ray.selection.result import SelectionResult
from mtal_ray.selection.table import ConfidenceTable, load_table
from mtal_ray.selection.weights import resolve_weights

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


class ParameterError(SelectionError):
    """A selector refuses a parameter (or a combination); names the parameters at fault.

    The message is a template whose ``{name}`` placeholders are parameter names, so the
    same error reads ``beta needs task`` for :func:`~mtal_ray.selection.select` and
    ``selection.beta needs selection.task`` for a config (:meth:`render`).
    """

    def __init__(self, template: str, *params: str) -> None:
        self.template = template
        self.params = params
        super().__init__(self.render())

    def render(self, prefix: str = "") -> str:
        """The message with each parameter named ``prefix + name``."""
        known = set(self.params)
        return _PLACEHOLDER.sub(
            lambda m: f"{prefix}{m[1]}" if m[1] in known else m[0], self.template
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.template, *self.params))


@dataclasses.dataclass(frozen=True, repr=False)
class Selector:
    """A selection method with its parameters; prints as its constructor.

    Subclasses are frozen dataclasses whose fields are the method's parameters;
    :meth:`select` is the one entry point. Checks that need no table run when the
    selector is built (``__post_init__``, cooperative: call ``super().__post_init__()``).
    """

    #: CLI / registry name, e.g. ``"mt-avg"``.
    name: ClassVar[str] = ""
    #: Whether the method reads dropout agreement (``<task>.da``: k MC-dropout passes).
    needs_mc_dropout: ClassVar[bool] = False
    #: Whether the method reads confidences at all (False for the random methods).
    needs_confidence: ClassVar[bool] = True
    #: Whether the method selects under a budget only (the BLP methods: no ``n``).
    budgeted: ClassVar[bool] = False

    def __post_init__(self) -> None:
        """Check the parameters that need no table; raise :class:`ParameterError`."""

    @classmethod
    def accepts(cls, fixed: Mapping[str, Any] | None = None) -> frozenset[str]:
        """The parameters this method takes: its dataclass fields, less those ``fixed``
        by the method's name (e.g. ``aggregate`` of ``blp-joint-avg``)."""
        return frozenset(f.name for f in dataclasses.fields(cls) if f.init) - set(fixed or {})

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
        if self.needs_confidence and not ct.has_confidence:
            method = self.name or type(self).__name__
            raise SelectionError(
                f"{ct.source}: no '<task>.ec' confidence column ({method} reads "
                "confidences; only the random methods select from a table without them)"
            )
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
            raise ParameterError(f"{{beta}} must lie in [0, 1], got {self.beta}", "beta")
        if self.weights is not None and self.beta is not None:
            raise ParameterError(
                "give either {weights} or {beta} (with {task}), not both", "weights", "beta", "task"
            )
        if self.beta is not None and self.task is None:
            raise ParameterError(
                "{beta} needs {task}: the task that gets weight beta", "beta", "task"
            )
        if self.task is not None and self.beta is None:
            raise ParameterError(
                f"{{task}} {self.task!r} given without {{beta}} (use {{beta}} with {{task}}, "
                "or {weights})",
                "task",
                "beta",
                "weights",
            )
        if self.weights is not None:
            values = list(self.weights.values())
            if any(not v >= 0 for v in values) or not sum(values) > 0:
                raise ParameterError(
                    "{weights} must be non-negative with a positive sum, got "
                    f"{dict(self.weights)}",
                    "weights",
                )
        getattr(super(), "__post_init__", lambda: None)()

    def task_weights(self, ct: ConfidenceTable) -> NDArray[np.float64]:
        """Normalised weights in the table's task order, shape (T,)."""
        return resolve_weights(ct.tasks, weights=self.weights, beta=self.beta, task=self.task)


@dataclasses.dataclass(frozen=True, repr=False)
class TaskMixin:
    """A method driven by one named task."""

    task: str = ""

    def __post_init__(self) -> None:
        if not self.task:
            raise ParameterError(
                f"{getattr(self, 'name', '') or type(self).__name__} needs a task: set {{task}}",
                "task",
            )
        getattr(super(), "__post_init__", lambda: None)()

    def validate(self, ct: ConfidenceTable) -> None:
        if not self.task:
            raise SelectionError(
                f"{type(self).__name__} needs a task (one of {', '.join(ct.tasks)})"
            )
        ct.check_task(self.task)
