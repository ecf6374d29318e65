"""Multi-task active-learning selection (paper §4, §6.1, §7.1): pure numpy + python-mip.

One call per round::

    from mtal_ray.selection import select
    result = select("conf.parquet", "mt-par", n=200, beta=0.7, task="re")
    result.ids, result.tasks, result.to_json()

or a selector object (prints as its constructor, ready for run names)::

    MtPar(beta=0.7, task="re").select(table, n=200)
    BlpUdjs().select(table, budget=500)
"""

from mtal_ray.selection.base import RankingSelector, Selector
from mtal_ray.selection.blp import BlpEqb, BlpJoint, BlpStcs, BlpUdjs
from mtal_ray.selection.config import SelectionConfig
from mtal_ray.selection.cost import CostModel, TaskCosts, annotation_cost
from mtal_ray.selection.mt_ind import MtInd
from mtal_ray.selection.mt_par import MtPar
from mtal_ray.selection.registry import METHODS, make_selector, select
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
from mtal_ray.selection.table import ConfidenceTable, load_table

__all__ = [
    "METHODS",
    "BlpEqb",
    "BlpJoint",
    "BlpStcs",
    "BlpUdjs",
    "ConfidenceTable",
    "CostModel",
    "MtAvg",
    "MtAvgDa",
    "MtDa",
    "MtEc",
    "MtInd",
    "MtMax",
    "MtMin",
    "MtPar",
    "MtR",
    "MtRrf",
    "RankingSelector",
    "SelectionConfig",
    "SelectionResult",
    "Selector",
    "StDa",
    "StEc",
    "StR",
    "TaskCosts",
    "annotation_cost",
    "load_table",
    "make_selector",
    "select",
]
