"""Multi-task active-learning selection (paper §4, §6.1, §7.1): pure numpy + python-mip.

One call per round::

    from mtal_ray.selection import select
    result = select("conf.parquet", "mt-par", n=200, beta=0.7, task="re")
    result.ids, result.tasks, result.to_json()

or a selector object (prints as its constructor, ready for run names)::

    MtPar(beta=0.7, task="re").select(table, n=200)
    BlpUdjs().select(table, budget=500)

Names are exported lazily (PEP 562): importing one module of the package (the registry,
say) does not import the others.
"""

from typing import TYPE_CHECKING

from mtal_ray.lazy_exports import lazy_getattr

if TYPE_CHECKING:
    from mtal_ray.selection.base import (
        RankingSelector,
        Selector,
    )
    from mtal_ray.selection.blp import (
        BlpEqb,
        BlpJoint,
        BlpStcs,
        BlpUdjs,
    )
    from mtal_ray.selection.config import (
        SelectionConfig,
    )
    from mtal_ray.selection.cost import (
        CostModel,
        TaskCosts,
        annotation_cost,
    )
    from mtal_ray.selection.mt_ind import (
        MtInd,
    )
    from mtal_ray.selection.mt_par import (
        MtPar,
    )
    from mtal_ray.selection.registry import (
        METHODS,
        make_selector,
        select,
    )
    from mtal_ray.selection.result import (
        SelectionResult,
    )
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
    from mtal_ray.selection.table import (
        ConfidenceTable,
        load_table,
    )

#: Public name -> the module defining it, imported on first use.
_EXPORTS = {
    "RankingSelector": "mtal_ray.selection.base",
    "Selector": "mtal_ray.selection.base",
    "BlpEqb": "mtal_ray.selection.blp",
    "BlpJoint": "mtal_ray.selection.blp",
    "BlpStcs": "mtal_ray.selection.blp",
    "BlpUdjs": "mtal_ray.selection.blp",
    "SelectionConfig": "mtal_ray.selection.config",
    "CostModel": "mtal_ray.selection.cost",
    "TaskCosts": "mtal_ray.selection.cost",
    "annotation_cost": "mtal_ray.selection.cost",
    "MtInd": "mtal_ray.selection.mt_ind",
    "MtPar": "mtal_ray.selection.mt_par",
    "METHODS": "mtal_ray.selection.registry",
    "make_selector": "mtal_ray.selection.registry",
    "select": "mtal_ray.selection.registry",
    "SelectionResult": "mtal_ray.selection.result",
    "MtAvg": "mtal_ray.selection.scored",
    "MtAvgDa": "mtal_ray.selection.scored",
    "MtDa": "mtal_ray.selection.scored",
    "MtEc": "mtal_ray.selection.scored",
    "MtMax": "mtal_ray.selection.scored",
    "MtMin": "mtal_ray.selection.scored",
    "MtR": "mtal_ray.selection.scored",
    "MtRrf": "mtal_ray.selection.scored",
    "StDa": "mtal_ray.selection.scored",
    "StEc": "mtal_ray.selection.scored",
    "StR": "mtal_ray.selection.scored",
    "ConfidenceTable": "mtal_ray.selection.table",
    "load_table": "mtal_ray.selection.table",
}


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())


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
