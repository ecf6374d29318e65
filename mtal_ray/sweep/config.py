"""The ``sweep`` section of the experiment config: what to fan out and how.

A sweep runs one complete AL experiment per *trial*. A trial's parameters are config
overrides (``selection.method=mt-par``, ``selection.beta=0.7``, ``seed=1``); they come from

* ``grid``: key -> list of values, every combination is run; or a list of such grids,
  whose union is run (e.g. methods × β, plus MT-R that takes no β);
* ``random``: key -> distribution, sampled ``num_samples`` times per grid point with a
  seeded search, so the same sweep samples the same values;
* ``datasets``: named scenarios (dataset or domain), each a set of overrides such as
  ``data.path`` / ``data.format`` / ``data.tasks``; the name becomes the trial parameter
  ``dataset`` and a scenario column of the report.

Resources: each trial runs inside a Tune trial actor that itself launches Ray Train
workers and Ray Data scoring actors. If the trial actor reserved a whole CPU on a small
cluster, the nested workers would wait forever for it; so the trial reserves only
``trial_cpus`` (tiny by default), and the number of trials running at once is capped by
``max_concurrent_trials`` — by default ``floor(cluster CPUs / (cpus_per_trial +
trial_cpus))``, i.e. as many trials as fit together, where ``cpus_per_trial`` defaults
to what one trial's nested work reserves at once
(``training.num_workers × training.cpus_per_worker`` or ``scoring.concurrency ×
scoring.cpus_per_actor``, the larger). A sweep whose nested work could never be scheduled
next to its trial actors is refused before it starts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mtal_ray.sections import Section

#: Trial parameters that the report treats specially (averaged over / one column group).
SEED_KEY = "seed"
DATASET_KEY = "dataset"
BETA_KEY = "selection.beta"
METHOD_KEY = "selection.method"

_DISTRIBUTIONS = {
    "choice": None,  # any non-empty list
    "uniform": 2,
    "loguniform": 2,
    "randint": 2,
    "quniform": 3,
}


def _flatten(mapping: Any, is_leaf: Callable[[Any], bool], prefix: str = "") -> Any:
    """``{"selection": {"method": [...]}}`` -> ``{"selection.method": [...]}``.

    So that command-line overrides such as ``sweep.grid.selection.method=[mt-r,mt-avg]``
    (which nest) and YAML keys written as ``selection.method:`` mean the same.
    """
    if not isinstance(mapping, dict):
        return mapping
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if is_leaf(value):
            flat[name] = value
        else:
            flat.update(_flatten(value, is_leaf, name + "."))
    return flat


class Distribution(BaseModel):
    """One random-search dimension, written as a one-key mapping.

    ``{choice: [a, b]}``, ``{uniform: [low, high]}``, ``{loguniform: [low, high]}``,
    ``{randint: [low, high]}`` (high exclusive) or ``{quniform: [low, high, q]}``.
    """

    model_config = ConfigDict(extra="forbid")

    choice: list[Any] | None = None
    uniform: list[float] | None = None
    loguniform: list[float] | None = None
    randint: list[int] | None = None
    quniform: list[float] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Distribution:
        given = [name for name in _DISTRIBUTIONS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(_DISTRIBUTIONS)} (got {given})")
        name = given[0]
        args = getattr(self, name)
        arity = _DISTRIBUTIONS[name]
        if arity is None and not args:
            raise ValueError("choice needs at least one value")
        if arity is not None and len(args) != arity:
            raise ValueError(f"{name} takes {arity} numbers (got {args})")
        if name in ("uniform", "loguniform", "randint", "quniform") and not args[0] < args[1]:
            raise ValueError(f"{name}: low must be below high (got {args})")
        if name == "loguniform" and args[0] <= 0:
            raise ValueError(f"loguniform: bounds must be positive (got {args})")
        return self

    @property
    def kind(self) -> str:
        """The distribution's name (``choice``, ``uniform``, ...)."""
        return next(name for name in _DISTRIBUTIONS if getattr(self, name) is not None)

    @property
    def args(self) -> list[Any]:
        """The distribution's arguments."""
        return list(getattr(self, self.kind))


class SweepConfig(Section):
    """A Ray Tune sweep of complete AL experiments (config section ``sweep``).

    Attributes
    ----------
    name
        Sweep name: the sweep directory's name and the MLflow parent run's name.
        Default: the config file's stem.
    dir
        Folder that holds the sweep directory (``<dir>/<name>``).
    grid
        Config key -> values, every combination is a trial; or a list of such mappings
        (the union of their trials).
    random
        Config key -> :class:`Distribution`; sampled ``num_samples`` times per grid point.
    num_samples
        Tune's ``num_samples``: how often the grid is repeated with fresh random samples.
    datasets
        Scenario name -> overrides for that dataset/domain (a grid dimension ``dataset``).
    search_seed
        Seeds the random search, so a re-run samples the same trials.
    trial_cpus
        CPUs reserved by each trial actor itself (> 0; the work runs in nested Train
        workers and scoring actors that reserve their own).
    cpus_per_trial
        CPUs one trial's nested workers reserve at once; default: derived from each trial's
        ``training`` and ``scoring`` sections (the largest over trials). Used for the default
        ``max_concurrent_trials`` and the deadlock check.
    max_concurrent_trials
        Trials running at once; default ``max(1, floor(cluster CPUs / (cpus_per_trial +
        trial_cpus)))``: only trials whose workers can all run at the same time.
    max_failures
        Tune retries of a failed trial before it is recorded as failed.
    retry_failed
        When a sweep is re-run, run its failed trials again (else keep them failed).
    report_split
        Split whose final score the report compares (falls back to ``dev`` when a trial
        has no test scores).
    """

    section = "sweep"

    name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    dir: str = "runs/sweeps"
    grid: dict[str, list[Any]] | list[dict[str, list[Any]]] = Field(default_factory=dict)
    random: dict[str, Distribution] = Field(default_factory=dict)
    num_samples: int = Field(1, ge=1)
    datasets: dict[str, dict[str, Any]] = Field(default_factory=dict)
    search_seed: int = 0
    trial_cpus: float = Field(0.01, gt=0)
    cpus_per_trial: float | None = Field(None, gt=0)
    max_concurrent_trials: int | None = Field(None, ge=1)
    max_failures: int = Field(0, ge=0)
    retry_failed: bool = True
    report_split: Literal["test", "dev"] = "test"

    @field_validator("grid", mode="before")
    @classmethod
    def _flatten_grid(cls, grid: Any) -> Any:
        if isinstance(grid, list):
            return [_flatten(g, lambda value: not isinstance(value, dict)) for g in grid]
        return _flatten(grid, lambda value: not isinstance(value, dict))

    @field_validator("random", mode="before")
    @classmethod
    def _flatten_random(cls, random: Any) -> Any:
        return _flatten(
            random,
            # a section maps names to sections or distributions: all its values are mappings
            lambda value: (
                not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values())
            ),
        )

    @field_validator("grid")
    @classmethod
    def _grid_values(cls, grid: Any) -> Any:
        for one in grid if isinstance(grid, list) else [grid]:
            for key, values in one.items():
                if not values:
                    raise ValueError(f"{key}: a grid dimension needs at least one value")
                if len({repr(v) for v in values}) != len(values):
                    raise ValueError(f"{key}: repeated values {values}")
                if key == DATASET_KEY:
                    raise ValueError("'dataset' is set by sweep.datasets, not by the grid")
        return grid

    @property
    def grids(self) -> list[dict[str, list[Any]]]:
        """The grid as a list of grids (one for the mapping form)."""
        return list(self.grid) if isinstance(self.grid, list) else [self.grid]

    @property
    def grid_keys(self) -> set[str]:
        """Every key any grid sweeps."""
        return {key for grid in self.grids for key in grid}

    @field_validator("datasets")
    @classmethod
    def _dataset_names(cls, datasets: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name in datasets:
            if not name or "/" in name:
                raise ValueError(f"dataset name {name!r} must be non-empty and contain no '/'")
        return datasets

    @model_validator(mode="after")
    def _disjoint_keys(self) -> SweepConfig:
        both = sorted(self.grid_keys & set(self.random))
        if both:
            raise ValueError(f"keys in both grid and random: {', '.join(both)}")
        for key in [*self.grid_keys, *self.random]:
            if key == "sweep" or key.startswith("sweep."):
                raise ValueError(f"{key}: a sweep cannot sweep its own section")
        return self
