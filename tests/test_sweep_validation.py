"""A sweep validates every trial's config (grid points and random edges) before Ray starts."""

from __future__ import annotations

import sys

import pytest

from mtal_ray.config import load_config
from mtal_ray.errors import ConfigError
from mtal_ray.sweep.config import Distribution
from mtal_ray.sweep.space import edge_values
from mtal_ray.sweep.tuner import planned_trials


@pytest.mark.parametrize(
    ("dist", "edges"),
    [
        ({"choice": ["a", "b", "c"]}, ["a", "b", "c"]),
        ({"uniform": [0.0, 1.5]}, [0.0, 1.5]),
        ({"loguniform": [1e-5, 1e-3]}, [1e-5, 1e-3]),
        ({"randint": [1, 4]}, [1, 3]),
        ({"quniform": [0.05, 0.95, 0.1]}, [0.0, 0.9]),
    ],
)
def test_edge_values_bound_what_a_distribution_samples(dist, edges):
    assert edge_values(Distribution.model_validate(dist)) == pytest.approx(edges)


def _sweep(*overrides: str):
    return load_config(None, ["selection.beta=0.5", "selection.task=id", *overrides])


def test_every_grid_point_and_random_edge_is_validated_without_ray():
    ray_loaded = "ray" in sys.modules
    ok = _sweep(
        "sweep.grid.selection.method=[mt-avg, mt-par]",
        "sweep.random.selection.beta={uniform: [0.0, 1.0]}",
    )
    assert len(planned_trials(ok, {"selection": {"beta": 0.5, "task": "id"}})) == 2
    # beta up to 1.5: Tune could sample a beta above 1, refused before any trial runs
    bad = _sweep(
        "sweep.grid.selection.method=[mt-avg]",
        "sweep.random.selection.beta={uniform: [0.0, 1.5]}",
    )
    with pytest.raises(ConfigError) as info:
        planned_trials(bad, {"selection": {"task": "id"}})
    message = str(info.value)
    assert message.startswith("sweep trial mt-avg with selection.beta=1.5 (sweep.random): ")
    assert "selection.beta: Input should be less than or equal to 1" in message
    # every choice of a random dimension: mt-r takes no beta
    choice = _sweep("sweep.random.selection.method={choice: [mt-avg, mt-r]}")
    with pytest.raises(ConfigError, match=r"with selection.method='mt-r' .*method mt-r does not"):
        planned_trials(choice, {"selection": {"beta": 0.5, "task": "id"}})
    assert ("ray" in sys.modules) == ray_loaded  # planning never imports Ray


@pytest.mark.parametrize(
    ("grid", "needle"),
    [
        ("sweep.grid.selection.method=[mt-avg, mt-ec]", "sweep trial mt-ec: selection:"),
        ("sweep.grid.selection.task=[id, ner]", "selection.task: 'ner' is not one of data.tasks"),
        ("sweep.grid.training.seed=[1]", "training.seed: 1 would be ignored"),
        ("sweep.grid.selection.method=[blp-udjs]", "method blp-udjs does not take selection.beta"),
        ("sweep.grid.selection.method=[blp-joint-avg]", "selection.budget: blp-joint-avg selects"),
    ],
)
def test_a_bad_trial_is_named_before_ray_starts(grid, needle):
    raw = {"data": {"tasks": ["sf", "id"]}, "selection": {"beta": 0.5, "task": "id"}}
    cfg = load_config(
        None, ["data.tasks=[sf, id]", "selection.beta=0.5", "selection.task=id", grid]
    )
    with pytest.raises(ConfigError, match=r"^sweep trial ") as info:
        planned_trials(cfg, raw)
    assert needle in str(info.value)


def test_a_sweep_base_may_leave_the_selection_to_its_trials():
    # the base names the task, the random dimension supplies beta: valid per trial only
    overrides = [
        "selection.task=id",
        "sweep.grid.selection.method=[mt-avg]",
        "sweep.random.selection.beta={uniform: [0.2, 0.9]}",
    ]
    cfg = load_config(None, overrides)
    assert planned_trials(cfg, {"selection": {"task": "id"}})[0].startswith("mt-avg_beta=0.2_")
    with pytest.raises(ConfigError, match=r"^selection\.task 'id' given without selection\.beta"):
        load_config(None, overrides[:1])  # the same selection without a sweep
    # without the random beta, the trial is refused before Ray starts
    no_beta = load_config(None, overrides[:2])
    with pytest.raises(ConfigError, match=r"^sweep trial mt-avg: selection\.task 'id' given"):
        planned_trials(no_beta, {"selection": {"task": "id"}})
