"""The sweep's search space: trial parameters, their names and their configs.

Pure (no Ray): :func:`grid_points` expands the grid the way Tune's ``grid_search`` does,
:func:`trial_name` gives every parameter set a deterministic, readable folder name (no
timestamps, so a re-run finds the same trial), and :func:`trial_raw_config` applies a
trial's parameters to the base config. :func:`tune_param_space` is the only function that
touches Ray Tune (imported lazily).
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import re
from collections.abc import Mapping
from typing import Any

from mtal_ray.errors import ConfigError
from mtal_ray.sweep.config import (
    BETA_KEY,
    DATASET_KEY,
    METHOD_KEY,
    SEED_KEY,
    Distribution,
    SweepConfig,
)

#: Key of the grid point in a Tune trial's config (see :func:`tune_param_space`).
GRID_PARAM = "grid"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.=+-]+")
#: Keys shown first in trial names, in this order; the seed always comes last.
_NAME_ORDER = (DATASET_KEY, METHOD_KEY, BETA_KEY)
_SHORT = {METHOD_KEY: "", BETA_KEY: "beta", DATASET_KEY: "", SEED_KEY: "seed"}


def grid_points(sweep: SweepConfig) -> list[dict[str, Any]]:
    """Every trial's grid parameters: ``dataset`` × each grid's product, grids in order.

    The union of several grids keeps the first of repeated points. Random dimensions are
    not included.
    """
    points: list[dict[str, Any]] = []
    seen: set[str] = set()
    for grid in sweep.grids:
        dims: dict[str, list[Any]] = {}
        if sweep.datasets:
            dims[DATASET_KEY] = list(sweep.datasets)
        dims.update(grid)
        keys = list(dims)
        for values in itertools.product(*dims.values()):
            point = dict(zip(keys, values, strict=True))
            identity = json.dumps(point, sort_keys=True, default=str)
            if identity not in seen:
                seen.add(identity)
                points.append(point)
    return points


def _format_value(value: Any, exact: bool) -> str:
    if isinstance(value, float) and not exact:
        text = f"{value:.3g}"
    elif isinstance(value, str | int | float | bool) or value is None:
        text = str(value)
    else:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return _UNSAFE.sub("-", text).strip("-") or "_"


def _ordered_keys(params: Mapping[str, Any]) -> list[str]:
    first = [k for k in _NAME_ORDER if k in params]
    middle = sorted(k for k in params if k not in _NAME_ORDER and k != SEED_KEY)
    return first + middle + ([SEED_KEY] if SEED_KEY in params else [])


def trial_name(
    params: Mapping[str, Any], random_keys: frozenset[str] | set[str] = frozenset()
) -> str:
    """The trial's folder name, e.g. ``atis_mt-avg_beta=0.5_seed=1``.

    Values of random-search keys are rounded for readability, so a short digest of the
    exact parameters is appended whenever there are any.
    """
    parts = []
    for key in _ordered_keys(params):
        short = _SHORT.get(key, key.rsplit(".", 1)[-1])
        value = _format_value(params[key], exact=key not in random_keys)
        parts.append(f"{short}={value}" if short else value)
    name = "_".join(parts) or "trial"
    if random_keys & set(params):
        exact = json.dumps(dict(params), sort_keys=True, default=str)
        name += "_" + hashlib.sha256(exact.encode()).hexdigest()[:6]
    return name[:200]


def set_key(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set the dotted ``key`` in the nested mapping ``raw`` (creating sections)."""
    path = key.split(".")
    node = raw
    for part in path[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"sweep: {key}: {part!r} is a value, not a section")
        node = child
    node[path[-1]] = copy.deepcopy(value)


def trial_raw_config(
    base: Mapping[str, Any], params: Mapping[str, Any], datasets: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """The base config (without ``sweep``) with a trial's parameters applied.

    The dataset's overrides are applied first, so a grid key can still refine them.
    """
    raw = copy.deepcopy({k: v for k, v in base.items() if k != "sweep"})
    if DATASET_KEY in params:
        name = params[DATASET_KEY]
        if name not in datasets:
            raise ConfigError(f"sweep.datasets: no dataset named {name!r}")
        for key, value in datasets[name].items():
            set_key(raw, key, value)
    for key, value in params.items():
        if key != DATASET_KEY:
            set_key(raw, key, value)
    return raw


def representative(dist: Distribution) -> Any:
    """A value the distribution can produce (used to validate configs before sampling)."""
    return dist.args[0]


def edge_values(dist: Distribution) -> list[Any]:
    """The values that bound what the distribution can produce, for validating trial
    configs before Tune samples them: every ``choice``, else the lowest and highest value
    (``randint``'s high is exclusive; ``quniform`` rounds to multiples of ``q``).

    Config checks are bounds and choices, so a value between two valid edges is valid.
    """
    args = dist.args
    if dist.kind == "choice":
        return list(args)
    if dist.kind == "randint":
        return [int(args[0]), int(args[1]) - 1]
    if dist.kind == "quniform":
        low, high, q = args
        return [round(low / q) * q, round(high / q) * q]
    return [args[0], args[1]]


def space_digest(sweep: SweepConfig) -> str:
    """Digest of what defines the set of trials (grid, random space, samples, datasets)."""
    payload = {
        "grid": sweep.grids,
        "random": {k: d.model_dump(exclude_none=True) for k, d in sweep.random.items()},
        "num_samples": sweep.num_samples,
        "datasets": sweep.datasets,
        "search_seed": sweep.search_seed,
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def tune_param_space(sweep: SweepConfig) -> dict[str, Any]:
    """The Tune ``param_space``: one ``grid_search`` over the grid points (key ``grid``,
    so unions of grids work) and a sampler per random dimension."""
    from ray import tune

    space: dict[str, Any] = {GRID_PARAM: tune.grid_search(grid_points(sweep))}
    samplers = {
        "choice": tune.choice,
        "uniform": tune.uniform,
        "loguniform": tune.loguniform,
        "randint": tune.randint,
        "quniform": tune.quniform,
    }
    for key, dist in sweep.random.items():
        args = dist.args
        space[key] = (
            samplers[dist.kind](args) if dist.kind == "choice" else samplers[dist.kind](*args)
        )
    return space


def trial_params(tune_config: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's parameters from its Tune config: the grid point plus the random samples."""
    params = dict(tune_config.get(GRID_PARAM) or {})
    params.update({k: v for k, v in tune_config.items() if k != GRID_PARAM})
    return params
