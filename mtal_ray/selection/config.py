"""The ``selection`` section of the experiment config."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mtal_ray.selection.base import Selector
from mtal_ray.selection.cost import CostModel
from mtal_ray.selection.registry import METHODS, make_selector


class SelectionConfig(BaseModel):
    """How each active-learning round selects samples.

    At most one of ``n`` (samples per round) and ``budget`` (annotation cost per round)
    is set; with neither, the AL driver selects as many samples per round as the initial
    labeled set holds (the paper's protocol: 2 % of train per round). ``weights`` or
    ``beta`` + ``task`` weight the tasks; ``task`` alone names the task of ST-*, MT-EC,
    MT-DA and STCS.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: str = "mt-avg"
    n: int | None = Field(default=None, gt=0)
    budget: float | None = Field(default=None, gt=0)
    weights: dict[str, float] | None = None
    beta: float | None = Field(default=None, ge=0.0, le=1.0)
    task: str | None = None
    seed: int = 0
    time_limit: float = Field(default=60.0, gt=0)
    tp: float = Field(default=1.0, ge=0, description="per-entity cost of token-level tasks")
    ts: float = Field(default=3.0, ge=0, description="per-sentence cost of sentence-level tasks")

    @model_validator(mode="after")
    def _check(self) -> SelectionConfig:
        if self.method.lower() not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.n is not None and self.budget is not None:
            raise ValueError("set n or budget, not both")
        if self.weights is not None and self.beta is not None:
            raise ValueError("set either weights or beta (with task), not both")
        if self.method.lower().startswith("blp-") and self.n is not None:
            raise ValueError(f"{self.method} selects under a budget: set budget, not n")
        return self

    def selector(self) -> Selector:
        """The configured selector (raises SelectionError on parameters it does not take)."""
        is_blp = self.method.lower().startswith("blp-")
        params: dict[str, Any] = {
            "weights": self.weights,
            "beta": self.beta,
            "task": self.task,
            "seed": self.seed,
            "time_limit": self.time_limit if is_blp else None,
        }
        return make_selector(self.method, **params)

    def cost_model(self) -> CostModel:
        """The cost model with this section's ``tp`` and ``ts``."""
        return CostModel(tp=self.tp, ts=self.ts)
