"""The ``selection`` section of the experiment config."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationInfo, model_validator

from mtal_ray.errors import SelectionError
from mtal_ray.sections import SWEEP_BASE, Section, key_error, keys_error
from mtal_ray.selection.base import ParameterError, Selector
from mtal_ray.selection.cost import CostModel
from mtal_ray.selection.registry import METHODS, Method, make_selector


class SelectionConfig(Section):
    """How each active-learning round selects samples.

    At most one of ``n`` (samples per round) and ``budget`` (annotation cost per round)
    is set; with neither, the AL driver selects as many samples per round as the initial
    labeled set holds (the paper's protocol: 2 % of train per round). ``weights`` or
    ``beta`` + ``task`` weight the tasks; ``task`` alone names the task of ST-*, MT-EC,
    MT-DA and STCS.

    Validation builds the selector (:meth:`selector`), so every parameter the method
    would refuse (``beta`` without ``task``, ``beta`` for ``mt-r``, no ``task`` for
    ``mt-ec``) is a config error naming the key when the config is loaded. The section
    is frozen: copies with changes go through :meth:`updated`.
    """

    model_config = ConfigDict(frozen=True)
    section = "selection"

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
    uncertainty: Literal["mean", "total"] = Field(
        default="mean",
        description="how a sentence's EC adds up over its words/pairs: mean (the paper's "
        "eq. 2) or total (sum: long unsure sentences rank higher; see "
        "mtal_ray.selection.uncertainty)",
    )
    cost_model: Literal["paper", "measured"] = Field(
        default="paper",
        description="paper: tp/ts as given; measured: tp/ts per task fitted to the times an "
        "annotation tool measured in earlier rounds (paper costs until a fit exists)",
    )

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> SelectionConfig:
        if self.method.lower() not in METHODS:
            raise key_error(
                "method", f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}"
            )
        if self.n is not None and self.budget is not None:
            raise key_error("budget", "set n or budget, not both")
        if self.weights is not None and self.beta is not None:
            raise key_error("beta", "set either weights or beta (with task), not both")
        if self.entry.budgeted and self.n is not None:
            raise key_error("n", f"{self.method} selects under a budget: set budget, not n")
        if self.uncertainty == "total" and self.entry.needs_mc_dropout:
            raise key_error(
                "uncertainty",
                f"total changes the EC only; {self.method} ranks by dropout agreement (DA)",
            )
        if (info.context or {}).get(SWEEP_BASE):
            return self  # a sweep's base: each trial's selection is built and checked
        try:
            self.selector()
        except ParameterError as err:
            raise keys_error(err.render(f"{self.section}.")) from None
        except SelectionError as err:
            raise keys_error(str(err)) from None
        return self

    @property
    def entry(self) -> Method:
        """The registry entry of :attr:`method` (what it takes and needs)."""
        return METHODS[self.method.lower()]

    def selector(self, seed: int | None = None) -> Selector:
        """The configured selector (raises SelectionError on parameters it does not take).

        ``seed`` replaces the section's ``seed`` (the AL loop's per-round seed); only the
        random methods read it.
        """
        params: dict[str, Any] = {
            "weights": self.weights,
            "beta": self.beta,
            "task": self.task,
            "seed": self.seed if seed is None else seed,
        }
        if "time_limit" in self.entry.accepts():
            params["time_limit"] = self.time_limit
        return make_selector(self.method, **params)

    def paper_costs(self) -> CostModel:
        """The cost model with this section's ``tp`` and ``ts``."""
        return CostModel(tp=self.tp, ts=self.ts)
