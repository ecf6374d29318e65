"""Loop state: persisted atomically, selection applied idempotently."""

from __future__ import annotations

import json

from mtal_ray.driver.state import LoopState, RoundRecord, load_state, save_state
from mtal_ray.mlflow_tracking import flatten
from mtal_ray.models.inference import geometric_mean


def test_state_round_trips_through_json(tmp_path):
    state = LoopState(config_digest="abc", iterations=3, labeled={"sf": ["a"]}, pool=["b", "c"])
    state.round().dev = {"sf": 0.5}
    state.round(2).selected = 4
    save_state(tmp_path, state)
    loaded = load_state(tmp_path)
    assert loaded == state
    assert loaded.rounds[1] == RoundRecord(iteration=1)
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind
    assert json.loads((tmp_path / "state.json").read_text())["iterations"] == 3


def test_apply_selection_is_idempotent_and_per_task():
    state = LoopState(
        config_digest="x", iterations=2, labeled={"sf": ["a"], "id": ["a"]}, pool=["b", "c", "d"]
    )
    selection = {"b": ["sf", "id"], "c": ["id"]}
    state.apply_selection(selection)
    once = (dict(state.labeled), list(state.pool))
    state.apply_selection(selection)
    assert (state.labeled, state.pool) == once
    assert state.labeled == {"sf": ["a", "b"], "id": ["a", "b", "c"]}
    assert state.pool == ["d"]


def test_missing_state_means_new_run(tmp_path):
    assert load_state(tmp_path) is None


def test_geometric_mean_and_flatten():
    assert abs(geometric_mean([0.25, 1.0]) - 0.5) < 1e-12
    assert geometric_mean([0.0, 0.9]) == 0.0
    assert flatten({"a": {"b": 1, "c": {"d": None}}, "e": [1, 2]}) == {
        "a.b": "1",
        "a.c.d": "None",
        "e": "[1, 2]",
    }
