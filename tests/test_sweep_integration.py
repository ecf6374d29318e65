"""A tiny real sweep end to end: 3 trials (MT-AVG at 2 β, MT-R), killed and resumed.

The trials train in their own actors (``training.num_workers: 0``).

Runs ``mtal-ray sweep`` in a subprocess on the synthetic SF+ID corpus (tiny slice,
2 iterations, a few training steps), kills the whole process group with SIGKILL once a
trial has finished and another is running (the first run starts a Ray of its own, so
the kill takes it down too), relaunches the same command (on the session's shared Ray)
and checks that only the missing trials ran again, that every trial is a FINISHED MLflow
child run of the sweep's parent run, and that the report files are there, with the
paired comparison with random selection (MT-R) checked against the trials' own scores.
Three trials
are the fewest that leave one finished, one running and one not started at the kill
with two trials running at a time.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mtal_ray.sweep.results import TRIALS_DIR, load_sweep_info

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "data.synthetic.n_train=48",
    "data.synthetic.n_dev=12",
    "data.synthetic.n_test=16",
    "data.initial_count=8",
    "data.dev_multiple=1.0",
    "training.max_steps=3",
    "training.eval_every=3",
    "training.batch_size=8",
    "scoring.k=2",
    "al.iterations=2",
    # each trial trains in its own actor: what is checked is Tune's bookkeeping, not Ray
    # Train's (a sweep trial with Train workers: test_node_loss.py)
    "training.num_workers=0",
    # the first run's own Ray gets every CPU of the host, the resume's shared Ray 2: the
    # same limit in both, so the resume finds the Tune state on any host
    "sweep.max_concurrent_trials=2",
    "sweep.grid=[{selection.method: [mt-avg], selection.beta: [0.5, 1.0],"
    " selection.task: [id], seed: [0]},"
    " {selection.method: [mt-r], seed: [0]}]",
]
# selection.task is set by the mt-avg grid only, so it names those rows too
LABELS = ["mt-r", "mt-avg (β=0.5, task=id)", "mt-avg (β=1, task=id)"]


def _statuses(sweep_dir: Path) -> dict[str, str]:
    out = {}
    for path in (sweep_dir / TRIALS_DIR).glob("*/trial.json"):
        try:
            out[path.parent.name] = json.loads(path.read_text())["status"]
        except (OSError, ValueError, KeyError):
            continue  # being replaced right now
    return out


def _settled_statuses(sweep_dir: Path, quiet_s: float = 8.0) -> dict[str, str]:
    """The trials' statuses once none has changed for ``quiet_s``: after a SIGKILL of the
    sweep's process group, a trial's Ray worker can live on until the launcher's watchdog
    stops it (poll 1 s + 3 s grace) and still record its status."""
    seen, since, deadline = _statuses(sweep_dir), time.monotonic(), time.monotonic() + 60
    while time.monotonic() - since < quiet_s and time.monotonic() < deadline:
        time.sleep(0.5)
        now = _statuses(sweep_dir)
        if now != seen:
            seen, since = now, time.monotonic()
    return seen


def _attempts(sweep_dir: Path) -> dict[str, int]:
    return {
        p.parent.name: json.loads(p.read_text())["attempts"]
        for p in (sweep_dir / TRIALS_DIR).glob("*/trial.json")
    }


def _command(sweep_dir: Path, encoder: str) -> list[str]:
    config = REPO / "configs" / "sweep_quickstart.yaml"
    return [
        sys.executable, "-m", "mtal_ray.cli", "sweep", "--config", str(config),
        "--sweep-dir", str(sweep_dir), f"model.encoder={encoder}", *TINY,
    ]  # fmt: skip


def _env(ray_address: str | None = None) -> dict[str, str]:
    """The sweep's environment: the shared Ray at ``ray_address``, else a local Ray of its
    own (started and, on SIGKILL of the process group, killed with the sweep)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", RAY_DEDUP_LOGS="0")
    env.pop("RAY_ADDRESS", None)
    if ray_address is not None:
        env["RAY_ADDRESS"] = ray_address
    return env


def test_tiny_sweep_is_tracked_reported_and_resumes_only_missing_trials(
    tmp_path: Path, encoder: str, ray_address: str
):
    sweep_dir = tmp_path / "sweep"
    log = (tmp_path / "first.log").open("w")
    first = subprocess.Popen(
        _command(sweep_dir, encoder), cwd=REPO, env=_env(), stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    killed = False
    deadline = time.monotonic() + 600
    try:
        while first.poll() is None and time.monotonic() < deadline:
            status = _statuses(sweep_dir)
            if "finished" in status.values() and "running" in status.values():
                os.killpg(first.pid, signal.SIGKILL)  # the sweep and the Ray it started
                killed = True
                break
            time.sleep(1)
    finally:
        if first.poll() is None and not killed:
            os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        log.close()
    assert killed, (
        "the first run ended before it could be killed:\n"
        + (tmp_path / "first.log").read_text()[-3000:]
    )
    before = _settled_statuses(sweep_dir)
    done_before = {name for name, s in before.items() if s == "finished"}
    assert done_before and len(done_before) < 3

    second = subprocess.run(
        _command(sweep_dir, encoder),
        cwd=REPO,
        env=_env(ray_address),  # the resume needs no Ray of its own
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "resuming the sweep" in second.stdout
    # Tune's state is named by the space and the limit of trials at once
    assert [p.name.rsplit("-", 1)[1] for p in sweep_dir.glob("tune-*")] == ["c2"]
    # Resources add up (issue 20): trials that run together all get their CPUs (with
    # Train workers, none waits out its start-up timeout; unit: test_sweep_space.py)
    logs = (tmp_path / "first.log").read_text() + second.stdout + second.stderr
    assert "worker group startup timed out" not in logs

    # Only the missing trials ran again.
    attempts = _attempts(sweep_dir)
    assert len(attempts) == 3 and set(_statuses(sweep_dir).values()) == {"finished"}
    assert all(attempts[name] == 1 for name in done_before)
    again = {name: attempts[name] for name in before if name not in done_before}
    assert all(n == 2 for n in again.values()), (before, attempts)

    # The report.
    for name in ("report.md", "report.csv", "learning_curves.png", "overlap.png", "beta.png"):
        assert (sweep_dir / name).stat().st_size > 0, name
    rows = list(csv.DictReader(io.StringIO((sweep_dir / "report.csv").read_text())))
    assert [r["method"] for r in rows] == LABELS
    for row in rows:
        for task in ("sf", "id"):
            assert 0.0 <= float(row[f"{task}.mean"]) <= 1.0 and row[f"{task}.n"] == "1"
    report = (sweep_dir / "report.md").read_text()
    assert "Trials: 3 finished, 0 failed, 0 unfinished." in report

    # The comparison with random selection: each method's gain over MT-R (same seed) per
    # iteration is the difference of the two trials' own test scores.
    assert "## Gain over random selection (MT-R)" in report
    assert (sweep_dir / "gain_over_random.png").stat().st_size > 0
    gains = list(csv.DictReader(io.StringIO((sweep_dir / "reference.csv").read_text())))
    assert {g["method"] for g in gains} == set(LABELS[1:])
    summaries = {
        json.loads((p.parent / "trial.json").read_text())["params"].get("selection.beta"): [
            r for r in json.loads(p.read_text())["rows"]
        ]
        for p in (sweep_dir / TRIALS_DIR).glob("*/summary.json")
    }
    random_rows = summaries[None]
    for beta, label in ((0.5, LABELS[1]), (1.0, LABELS[2])):
        for task in ("sf", "id"):
            for iteration in (0, 1):
                (row,) = [
                    g for g in gains
                    if (g["method"], g["task"], g["iteration"]) == (label, task, str(iteration))
                ]  # fmt: skip
                expected = (
                    summaries[beta][iteration][f"test.{task}"]
                    - random_rows[iteration][f"test.{task}"]
                )
                assert float(row["gain"]) == pytest.approx(expected, abs=1e-5)
                assert row["seeds"] == "1"

    # MLflow: one parent, one FINISHED child per trial with the driver's metrics.
    from mlflow.tracking import MlflowClient

    info = load_sweep_info(sweep_dir)
    client = MlflowClient(tracking_uri=info["tracking_uri"])
    parent = client.get_run(info["parent_run_id"])
    assert parent.info.status == "FINISHED" and parent.data.tags["sweep.failed_trials"] == "0"
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"report.md", "report.csv", "overlap.png", "beta.png"} <= artifacts
    experiment = client.get_experiment_by_name(info["experiment"]).experiment_id
    children = client.search_runs(
        [experiment], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert sorted(r.info.run_name for r in children) == sorted(attempts)
    for child in children:
        assert child.info.status == "FINISHED" and child.data.tags["sweep.status"] == "finished"
        assert child.data.params["selection.method"] in ("mt-avg", "mt-r")
        steps = {m.step for m in client.get_metric_history(child.info.run_id, "dev.sf")}
        assert steps == {0, 1}


def test_a_failed_trial_is_recorded_as_failed_and_the_sweep_goes_on(
    tmp_path: Path, encoder: str, ray_address: str
):
    """One trial's encoder does not exist: that trial fails (FAILED in MLflow, listed in
    the report), the other finishes, and the sweep exits 1 after both.

    Run through the main job (``python -m mtal_ray.launch`` with a ``sweep:`` section) with
    a random dimension: β is drawn from ``uniform(0.2, 0.9)`` for each grid point. The
    trials train in their own actors (``training.num_workers: 0``, no Ray Train inside
    Tune): the finished trial is that mode's end-to-end check in a sweep."""
    sweep_dir = tmp_path / "sweep"
    missing = tmp_path / "no-such-encoder"
    command = [
        sys.executable, "-m", "mtal_ray.launch",
        "--config", str(REPO / "configs" / "sweep_quickstart.yaml"),
        "--run-dir", str(sweep_dir),
        *TINY[:-1],  # the last item of TINY is its grid
        "training.max_steps=2",
        "training.eval_every=2",
        f"sweep.grid=[{{model.encoder: [{encoder}, {missing}], selection.method: [mt-avg],"
        " seed: [0]}]",
        "selection.task=id",
        "sweep.random.selection.beta={uniform: [0.2, 0.9]}",
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=REPO, env=_env(ray_address), capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert "2 trials, 1 failed" in done.stdout
    statuses = _statuses(sweep_dir)
    assert sorted(statuses.values()) == ["failed", "finished"], statuses
    report = (sweep_dir / "report.md").read_text()
    assert "Trials: 1 finished, 1 failed, 0 unfinished." in report

    from mlflow.tracking import MlflowClient

    info = load_sweep_info(sweep_dir)
    client = MlflowClient(tracking_uri=info["tracking_uri"])
    parent = client.get_run(info["parent_run_id"])
    assert parent.data.tags["sweep.failed_trials"] == "1"
    experiment = client.get_experiment_by_name(info["experiment"]).experiment_id
    children = client.search_runs(
        [experiment], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    by_encoder = {r.data.params["model.encoder"]: r for r in children}
    assert by_encoder[str(missing)].info.status == "FAILED"
    assert by_encoder[encoder].info.status == "FINISHED"
    betas = [float(r.data.params["selection.beta"]) for r in children]
    assert all(0.2 <= beta <= 0.9 for beta in betas), betas
    assert len(set(betas)) == 2, betas  # one draw per grid point
    records = [
        json.loads(path.read_text()) for path in (sweep_dir / TRIALS_DIR).glob("*/trial.json")
    ]
    by_run = {r["mlflow_run_id"]: r for r in records}
    for run in children:  # the trial's record holds the β its MLflow run logged
        record = by_run[run.info.run_id]
        assert record["beta"] == pytest.approx(float(run.data.params["selection.beta"]))
        assert record["params"]["selection.beta"] == record["beta"]
