"""``mtal-ray status``: where a run stands, from its files (issue 20).

The run directories are made in-process by the AL loop with the fake ports of
``test_driver_loop`` (no Ray): a finished run, a running one (a crash leaves it between
steps and the test holds its lock, as a live launcher would) and one waiting for human
annotation; and a sweep directory holding trials.
"""

from __future__ import annotations

import io
import json
import os
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from test_driver_loop import Crash, Recorder, _config, _loop

from mtal_ray.cli import main
from mtal_ray.cli.status import read_status, render, status_lines
from mtal_ray.driver.annotators import FileAnnotator
from mtal_ray.run_lock import locked


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    assert _loop(run_dir, _config()).run().status == "finished"
    return run_dir


def test_a_finished_run(finished: Path) -> None:
    status = read_status(finished)
    assert status.status == "finished" and status.holder is None
    assert status.labeled == {"sf": 14, "id": 14} and status.pool == 46
    assert status.last_iteration == 2 and set(status.dev) == set(status.test) == {"sf", "id"}
    # every step's whole wall time (the loop records step.<name> for each)
    assert set(status.step_seconds) == {"train", "score", "select", "annotate", "update"}
    assert status.disk_bytes > 0
    text = "\n".join(render(status))
    assert f"run {finished}: finished" in text and "3 iterations done" in text
    assert "labeled: id 14, sf 14; pool 46" in text  # data.tasks unset: sorted
    spent = json.loads((finished / "state.json").read_text())["annotated_cost_spent"]
    assert status.annotated_cost == spent > 0 and f"; annotated cost {spent:g}" in text
    assert "scores (iteration 2): dev id 0.1400, sf 0.1400; test id 0.1167" in text
    assert "time per step (mean): train" in text and "disk: " in text


def test_a_running_run_shows_its_step_and_eta(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    # stopped before the 7th step: iteration 1, step score (iteration 0's times are known)
    with pytest.raises(Crash):
        _loop(run_dir, _config(), callbacks=[Recorder(crash_before=6)]).run()
    state = json.loads((run_dir / "state.json").read_text())
    state["rounds"][0]["seconds"]["step.score"] = 100.0  # a measurable mean for the ETA
    (run_dir / "state.json").write_text(json.dumps(state))
    written = (run_dir / "state.json").stat().st_mtime
    assert read_status(run_dir).status == "stopped"  # nobody holds the lock
    with locked(run_dir, what="run directory", command="mtal-ray run"):
        status = read_status(run_dir, now=written + 40)
        lines, running = status_lines(run_dir, now=written + 40)
    assert running and status.status == "running" and f"pid {os.getpid()}" in status.holder
    assert (status.iteration, status.step) == (1, "score")
    assert status.since_s == pytest.approx(40, abs=1) and status.eta_s == pytest.approx(60, abs=1)
    assert "iteration 1/2, step score (running for 40s, ETA 1m00s)" in "\n".join(lines)


def test_a_run_waiting_for_annotation(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    loop = _loop(run_dir, _config("annotation.mode=human"), annotator=FileAnnotator())
    assert loop.run().status == "awaiting_annotation"
    status = read_status(run_dir)
    assert status.status == "waiting for annotation" and status.step == "annotate"
    assert status.waiting == str(run_dir / "annotation" / "round_0")
    text = "\n".join(render(status))
    assert f"mtal-ray import {run_dir} FILE" in text


def test_a_sweep_directory_lists_its_trials(tmp_path: Path, finished: Path) -> None:
    trial = tmp_path / "sweep" / "trials" / "mt-avg_b0.5"
    trial.mkdir(parents=True)
    for name in ("state.json", "config.json"):
        (trial / name).write_bytes((finished / name).read_bytes())
    (trial / "trial.json").write_text(json.dumps({"status": "finished"}))
    (tmp_path / "sweep" / "trials" / "mt-par_b1").mkdir()
    lines, running = status_lines(tmp_path / "sweep")
    assert not running and lines[0].startswith(f"sweep {tmp_path / 'sweep'}: 2 trial(s)")
    assert "  mt-avg_b0.5: finished, done; dev id 0.1400, sf 0.1400" in lines
    assert "  mt-par_b1: not started" in lines


def test_the_command(finished: Path, tmp_path: Path) -> None:
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["status", str(finished)]) == 0
        assert main(["status", str(finished), "--watch", "--interval", "0.01"]) == 0
    assert out.getvalue().count(f"run {finished}: finished") == 2
    assert main(["status", str(tmp_path / "nothing")]) == 2  # one error line
