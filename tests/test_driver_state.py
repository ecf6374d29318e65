"""Loop state: persisted atomically, selection applied idempotently."""

from __future__ import annotations

import json

from mtal_ray.driver.state import LoopState, RoundRecord, load_state, save_state
from mtal_ray.mlflow_tracking import flatten
from mtal_ray.models.inference import geometric_mean


def test_state_round_trips_through_json(tmp_path):
    state = LoopState(
        config_digest="abc", iterations=3, labeled={"sf": ["a"]}, excluded=["z"], pool_size=2
    )
    state.round().dev = {"sf": 0.5}
    state.round(2).selected = 4
    save_state(tmp_path, state)
    loaded = load_state(tmp_path)
    assert loaded == state
    assert loaded.rounds[1] == RoundRecord(iteration=1)
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind
    assert json.loads((tmp_path / "state.json").read_text())["iterations"] == 3


def _train(*ids: str):
    import pyarrow as pa

    return pa.table({"id": list(ids), "tokens": [[i] for i in ids]})


def test_apply_selection_is_idempotent_and_per_task():
    train = _train("d", "a", "b", "c", "e", "f")
    state = LoopState(
        config_digest="x", iterations=2, labeled={"sf": ["a"], "id": ["a"]}, excluded=["f"]
    )
    assert state.pool_of(train).column("id").to_pylist() == ["b", "c", "d", "e"]
    selection = {"b": ["sf", "id"], "c": ["id"], "e": []}
    state.apply_selection(selection)
    once = (dict(state.labeled), list(state.excluded))
    state.apply_selection(selection)
    assert (state.labeled, state.excluded) == once
    assert state.labeled == {"sf": ["a", "b"], "id": ["a", "b", "c"]}
    # selected for no task: out of the pool all the same
    assert state.excluded == ["e", "f"]
    assert state.pool_of(train).column("id").to_pylist() == ["d"]
    assert state.pool_count(train) == 1


def test_a_state_file_that_lists_the_pool_is_migrated(tmp_path):
    """Runs started before the pool was derived keep their pool exactly."""
    train = _train("a", "b", "c", "d", "e")
    old = {"config_digest": "x", "iterations": 2, "labeled": {"sf": ["a"]}, "pool": ["c", "e"]}
    (tmp_path / "state.json").write_text(json.dumps({**old, "version": 1}))
    state = load_state(tmp_path)
    assert state.migrate_pool(train)
    assert state.excluded == ["b", "d"] and state.pool_size == 2
    assert state.pool_of(train).column("id").to_pylist() == ["c", "e"]
    assert not state.migrate_pool(train)  # once
    save_state(tmp_path, state)
    saved = json.loads((tmp_path / "state.json").read_text())
    assert "pool" not in saved and "legacy_pool" not in saved
    assert load_state(tmp_path) == state


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
