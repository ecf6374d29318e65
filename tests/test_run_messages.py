"""Messages that mean what they say (issue 20): new, restarted and resumed runs say so
(and from where); a sweep trial reports one Tune result per AL iteration, so Tune's
"completed after N iterations" agrees with ours. In-process, with the fake ports of
``test_driver_loop`` (no Ray).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from test_driver_loop import BASE, Crash, FakeScorer, FakeTrainer, Recorder, _config, _loop

from mtal_ray.config import ExperimentConfig
from mtal_ray.driver.observers import ConsoleCallback
from mtal_ray.mlflow_tracking import MlflowTarget
from mtal_ray.ports import LoopPorts
from mtal_ray.sweep.trial import TrialContext, run_trial


def _first_line(run_dir: Path, crash_before: int | None = None) -> str:
    lines: list[str] = []
    callbacks = [ConsoleCallback(lines.append), Recorder(crash_before=crash_before)]
    with contextlib.suppress(Crash):
        _loop(run_dir, _config(), callbacks=callbacks).run()
    return lines[0]


def test_new_restarted_and_resumed_runs_say_so(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert _first_line(run_dir, crash_before=0).startswith(f"new run {run_dir}: 6 labeled")
    # the first launch created the run but finished no step: not a "resume at iteration 0"
    assert _first_line(run_dir, crash_before=2).startswith(
        f"restarting {run_dir} from its first step"
    )
    # train and score of iteration 0 are done (then select and annotate)
    assert _first_line(run_dir, crash_before=2).startswith(
        f"resuming {run_dir} at iteration 0/2, step select (iteration 0 score done); 6 labeled"
    )
    assert _first_line(run_dir).startswith(  # after select and annotate: update of 0
        f"resuming {run_dir} at iteration 0/2, step update (iteration 0 annotate done)"
    )
    assert _first_line(run_dir) == (
        f"run {run_dir} already finished (3 iterations); 14 labeled, 46 in the pool"
    )


def test_resuming_after_an_update_names_the_finished_iteration(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    _first_line(run_dir, crash_before=5)  # train score select annotate update done
    assert _first_line(run_dir).startswith(
        f"resuming {run_dir} at iteration 1/2, step train (iteration 0 done); 10 labeled"
    )


@pytest.fixture
def fake_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    def ports(config):
        from mtal_ray.driver.annotators import OracleAnnotator

        return LoopPorts(trainer=FakeTrainer(), scorer=FakeScorer(), annotator=OracleAnnotator())

    monkeypatch.setattr("mtal_ray.driver.wiring.ray_ports", ports)


def _context(tmp_path: Path) -> TrialContext:
    from mtal_ray.config import apply_overrides

    raw = apply_overrides({}, BASE)
    return TrialContext(
        sweep_name="s",
        sweep_dir=str(tmp_path / "sweep"),
        base_raw=raw,
        datasets={},
        base_dir=str(tmp_path),
        target=MlflowTarget("sqlite:///unused.db", "x", "file:///unused", enabled=False),
        parent_run_id=None,
        config_model=ExperimentConfig,
    )


def test_a_trial_reports_one_result_per_iteration(tmp_path: Path, fake_ports: None) -> None:
    context = _context(tmp_path)
    reports: list[dict] = []
    final = run_trial({"seed": 0}, context, report=reports.append)
    assert [r["iteration"] for r in reports] == [0, 1, 2]  # Tune: "after 3 iterations"
    # no ``done`` while the loop runs: Tune would stop the trainable there, before the loop
    # writes summary.json and the trial is recorded as finished
    assert all("done" not in r for r in reports)
    record = json.loads(next((tmp_path / "sweep").rglob("trial.json")).read_text())
    assert record["status"] == "finished"
    assert final["iteration"] == 2
    # a finished trial run again reports the same 3 results
    again: list[dict] = []
    run_trial({"seed": 0}, context, report=again.append)
    assert [r["iteration"] for r in again] == [0, 1, 2]


def test_a_trial_that_per_task_stopping_ends_is_finished(tmp_path: Path, fake_ports: None) -> None:
    from mtal_ray.sweep.results import load_trial

    context = _context(tmp_path)
    params = {"seed": 0, "al.stopping": [{"criterion": "budget", "threshold": 1.0}]}
    reports: list[dict] = []
    run_trial(params, context, report=reports.append)
    trial_dir = next((tmp_path / "sweep").rglob("trial.json")).parent
    summary = json.loads((trial_dir / "summary.json").read_text())
    assert summary["status"] == "stopped"  # every task spent its budget in round 0
    trial = load_trial(trial_dir)
    assert trial is not None and trial.record.status == "finished"
    assert {t: e["stopped_at"] for t, e in trial.stopping.items()} == {"sf": 1, "id": 1}
    assert [r["iteration"] for r in reports] == [0, 1]
