"""Method names → selectors, and :func:`select`, the one entry point per round."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from mtal_ray.errors import SelectionError
from mtal_ray.selection.base import Selector
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


def _joint(aggregate: str) -> Callable[..., Selector]:
    def make(**params: Any) -> Selector:
        return BlpJoint(aggregate=aggregate, **params)

    return make


#: Every method name and the selector class (or factory) behind it.
METHODS: dict[str, Callable[..., Selector]] = {
    "st-r": StR,
    "st-ec": StEc,
    "st-da": StDa,
    "mt-r": MtR,
    "mt-ec": MtEc,
    "mt-da": MtDa,
    "mt-avg": MtAvg,
    "mt-avgda": MtAvgDa,
    "mt-max": MtMax,
    "mt-min": MtMin,
    "mt-par": MtPar,
    "mt-rrf": MtRrf,
    "mt-ind": MtInd,
    "blp-udjs": BlpUdjs,
    "blp-eqb": BlpEqb,
    "blp-joint-avg": _joint("avg"),
    "blp-joint-max": _joint("max"),
    "blp-joint-min": _joint("min"),
    "blp-joint-rrf": _joint("rrf"),
    "blp-stcs": BlpStcs,
}

#: Which request parameters each method understands.
_ACCEPTS: dict[str, frozenset[str]] = {}
_WEIGHTED = frozenset({"weights", "beta", "task"})
for _name in ("mt-avg", "mt-avgda", "mt-par", "mt-rrf", "mt-ind"):
    _ACCEPTS[_name] = _WEIGHTED
for _name in ("st-ec", "st-da", "mt-ec", "mt-da"):
    _ACCEPTS[_name] = frozenset({"task"})
_ACCEPTS["st-r"] = frozenset({"task", "seed"})
_ACCEPTS["mt-r"] = frozenset({"seed"})
_ACCEPTS["mt-max"] = _ACCEPTS["mt-min"] = frozenset()
_ACCEPTS["blp-udjs"] = _ACCEPTS["blp-eqb"] = frozenset({"time_limit"})
_ACCEPTS["blp-joint-avg"] = _ACCEPTS["blp-joint-rrf"] = _WEIGHTED | {"time_limit"}
_ACCEPTS["blp-joint-max"] = _ACCEPTS["blp-joint-min"] = frozenset({"time_limit"})
_ACCEPTS["blp-stcs"] = frozenset({"task", "time_limit"})


def make_selector(method: str, **params: Any) -> Selector:
    """Build the selector called ``method`` from the parameters it understands.

    Parameters left as None are ignored; a parameter the method does not take (say,
    ``beta`` for ``mt-max``) raises :class:`SelectionError` instead of being dropped.
    """
    key = method.lower()
    if key not in METHODS:
        raise SelectionError(
            f"unknown selection method {method!r}; choose one of {', '.join(METHODS)}"
        )
    given = {k: v for k, v in params.items() if v is not None}
    if key in ("mt-r", "st-r") and given.get("seed") == 0:
        given.pop("seed")
    extra = sorted(
        set(given) - _ACCEPTS[key] - ({"seed"} if key not in ("mt-r", "st-r") else set())
    )
    if extra:
        raise SelectionError(f"method {key} does not take {', '.join(extra)}")
    given = {k: v for k, v in given.items() if k in _ACCEPTS[key]}
    return METHODS[key](**given)


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
    return selector.select(table, n=n, budget=budget, cost_model=cost_model)
