"""Method names → selectors, and :func:`select`, the one entry point per round."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from mtal_ray.selection.base import ParameterError, Selector, TaskMixin
from mtal_ray.selection.blp import BlpEqb, BlpJoint, BlpStcs, BlpUdjs
from mtal_ray.selection.cost import CostModel
from mtal_ray.selection.mt_ind import MtInd
from mtal_ray.selection.mt_par import MtPar
from mtal_ray.selection.result import SelectionResult
from mtal_ray.selection.scored import (
    MtAvg,
    MtAvgDa,
    MtDa,
    MtEc,
    MtMax,
    MtMin,
    MtR,
    MtRrf,
    StDa,
    StEc,
    StR,
)


@dataclasses.dataclass(frozen=True, eq=False)
class Method:
    """A registry entry: the selector class behind a method name, and the parameters the
    name fixes (``blp-joint-avg`` is :class:`BlpJoint` with ``aggregate="avg"``).

    Calling it builds the selector; :meth:`accepts` and the properties answer what the
    method takes and needs without building one.
    """

    cls: type[Selector]
    fixed: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __call__(self, **params: Any) -> Selector:
        return self.cls(**self.fixed, **params)

    def accepts(self) -> frozenset[str]:
        """The request parameters the method takes (its selector's fields, less ``fixed``)."""
        return self.cls.accepts(self.fixed)

    @property
    def needs_mc_dropout(self) -> bool:
        """Whether the method reads dropout agreement (DA columns)."""
        return self.cls.needs_mc_dropout

    @property
    def needs_confidence(self) -> bool:
        """Whether the method reads confidences at all."""
        return self.cls.needs_confidence

    @property
    def needs_task(self) -> bool:
        """Whether one named task drives the method (ST-*, MT-EC, MT-DA, STCS)."""
        return issubclass(self.cls, TaskMixin)

    @property
    def budgeted(self) -> bool:
        """Whether the method selects under a budget only (no ``n``)."""
        return self.cls.budgeted


#: Every method name and the selector class (with fixed parameters) behind it.
METHODS: dict[str, Method] = {
    "st-r": Method(StR),
    "st-ec": Method(StEc),
    "st-da": Method(StDa),
    "mt-r": Method(MtR),
    "mt-ec": Method(MtEc),
    "mt-da": Method(MtDa),
    "mt-avg": Method(MtAvg),
    "mt-avgda": Method(MtAvgDa),
    "mt-max": Method(MtMax),
    "mt-min": Method(MtMin),
    "mt-par": Method(MtPar),
    "mt-rrf": Method(MtRrf),
    "mt-ind": Method(MtInd),
    "blp-udjs": Method(BlpUdjs),
    "blp-eqb": Method(BlpEqb),
    "blp-joint-avg": Method(BlpJoint, {"aggregate": "avg"}),
    "blp-joint-max": Method(BlpJoint, {"aggregate": "max"}),
    "blp-joint-min": Method(BlpJoint, {"aggregate": "min"}),
    "blp-joint-rrf": Method(BlpJoint, {"aggregate": "rrf"}),
    "blp-stcs": Method(BlpStcs),
}


def method_entry(name: str) -> Method:
    """The registry entry of ``name`` (any case); SelectionError for an unknown name."""
    key = name.lower()
    if key not in METHODS:
        raise ParameterError(
            f"unknown selection {{method}} {name!r}; choose one of {', '.join(METHODS)}",
            "method",
        )
    return METHODS[key]


def make_selector(method: str, **params: Any) -> Selector:
    """Build the selector called ``method`` from the parameters it understands.

    Parameters left as None are ignored, and so is ``seed`` for a method without one (the
    request-wide seed of the random methods). Any other parameter the method does not
    take (say, ``beta`` for ``mt-max``) raises :class:`SelectionError` instead of being
    dropped, as does a combination the selector refuses (``beta`` without ``task``).
    """
    entry = method_entry(method)
    accepts = entry.accepts()
    given = {k: v for k, v in params.items() if v is not None}
    if "seed" not in accepts:
        given.pop("seed", None)
    extra = sorted(set(given) - accepts)
    if extra:
        raise ParameterError(
            f"method {method.lower()} does not take " + ", ".join(f"{{{p}}}" for p in extra),
            *extra,
        )
    return entry(**given)


def select(
    table: Any,
    method: str,
    *,
    n: int | None = None,
    budget: float | None = None,
    weights: Mapping[str, float] | None = None,
    beta: float | None = None,
    task: str | None = None,
    seed: int = 0,
    time_limit: float | None = None,
    cost_model: CostModel | None = None,
    uncertainty: str = "mean",
) -> SelectionResult:
    """Select from a confidence table with the named method.

    Parameters
    ----------
    table : ConfidenceTable, pyarrow.Table, Parquet path or dict of columns
        See :mod:`mtal_ray.selection.table` for the columns.
    method : str
        One of :data:`METHODS` (``mt-par``, ``blp-udjs``, ...).
    n : int, optional
        Number of samples (count-based methods).
    budget : float, optional
        Annotation budget: greedy (GRD_AL) for ranking methods, BLP for ``blp-*``.
    weights : mapping of task to weight, optional
        Task weights of the weighted methods (AVG, AVGDA, RRF, IND, PAR, joint AVG/RRF).
    beta, task : optional
        β on ``task``, the rest shared by the other tasks; ``task`` alone names the task
        of ST-*/MT-EC/MT-DA/STCS.
    seed : int
        Seed of the random methods (others ignore it).
    time_limit : float, optional
        Seconds per solver call of the BLP methods (default 60).
    cost_model : CostModel, optional
    uncertainty : {"mean", "total"}
        How a sentence's EC adds up over its positions (:mod:`mtal_ray.selection.uncertainty`).

    Returns
    -------
    SelectionResult
    """
    selector = make_selector(
        method,
        weights=dict(weights) if weights else None,
        beta=beta,
        task=task,
        seed=seed,
        time_limit=time_limit,
    )
    from mtal_ray.selection.table import load_table
    from mtal_ray.selection.uncertainty import check_method, with_aggregate

    check_method(method, uncertainty, method_entry(method).needs_mc_dropout)
    table = with_aggregate(load_table(table), uncertainty)
    return selector.select(table, n=n, budget=budget, cost_model=cost_model)
