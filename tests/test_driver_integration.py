"""The AL driver end to end through ``python -m mtal_ray.launch`` on a slice of real ATIS.

* an uninterrupted 2-iteration run on a local Ray of its own (MLflow run, learning curve,
  summary; its output is a job log: our lines, each once, no tracebacks, short);
* ``kill -9`` after selection (before the state update) and during scoring, then a
  relaunch: the final labeled set equals the uninterrupted run's;
* human annotation: export, a malformed import refused (state unchanged), a valid import,
  resume to the end.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from mtal_ray.data import make_table, read_slu, write_slu
from mtal_ray.data.slu import UNANNOTATED

pytestmark = [pytest.mark.integration, pytest.mark.realdata]

REPO = Path(__file__).resolve().parents[1]


def tiny_config(shared_data: Path, folder: Path, encoder: str, **extra: object) -> Path:
    """A 2-iteration ATIS SF+ID experiment small enough for CI, on the tiny random encoder:
    nothing these tests check depends on the encoder (the default MiniLM end to end is
    ``test_job_submit``'s; with it this module took ~390 s in a full run, 364 s without)."""
    config = {
        "seed": 3,
        "data": {
            "path": str(shared_data / "atis"),
            "tasks": ["sf", "id"],
            "initial_count": 16,
            "dev_multiple": 1.0,
            "limit_train": 80,
            "limit_eval": 24,
        },
        "model": {"sharing": "smt", "encoder": encoder},
        "training": {
            "num_workers": 1,
            "batch_size": 8,
            "max_steps": 6,  # two evaluations per round: enough for a best checkpoint
            "eval_every": 3,
            "patience": 2,
        },
        "scoring": {"k": 2, "concurrency": 1, "cpus_per_actor": 0.5, "batch_size": 16},
        "selection": {"method": "mt-avg", "n": 8},
        "al": {"iterations": 2},
        "tracking": {"experiment": "ci-driver"},
    }
    for key, value in extra.items():
        section, _, name = key.partition("__")
        config.setdefault(section, {})[name] = value
    path = folder / "experiment.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def launch(config: Path, run_dir: Path, env: dict[str, str | None] | None = None, **kwargs):
    """Start ``python -m mtal_ray.launch`` as its own process (group); an ``env`` value of
    None removes that variable."""
    environ = {**os.environ, **(env or {})}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mtal_ray.launch",
            "--config",
            str(config),
            "--run-dir",
            str(run_dir),
        ],
        cwd=REPO,
        env={k: v for k, v in environ.items() if v is not None},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        **kwargs,
    )


def finish(proc: subprocess.Popen, timeout: float = 600) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-4000:]
    return out


def kill_group(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)


def state_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "state.json").read_text())


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"launcher exited early:\n{proc.stdout.read()[-4000:]}")
        time.sleep(0.2)
    kill_group(proc)
    raise AssertionError("timed out waiting for the driver")


@pytest.fixture(scope="module")
def reference(shared_data, encoder, tmp_path_factory):
    """One uninterrupted run, on a local Ray of its own as a job on a fresh machine runs;
    the kill tests compare against it and its output is the job log the log test reads."""
    folder = tmp_path_factory.mktemp("reference")
    config = tiny_config(shared_data, folder, encoder)
    run_dir = folder / "run"
    out = finish(launch(config, run_dir, env={"RAY_ADDRESS": None}))
    return config, run_dir, out


def test_uninterrupted_run_tracks_everything(reference):
    _, run_dir, out = reference
    state = state_of(run_dir)
    assert state["step"] == "done" and state["iteration"] == 1
    assert len(state["labeled"]["sf"]) == 16 + 8 == len(state["labeled"]["id"])
    # the pool is the rest of the training split (the dev set is its own split)
    assert state["excluded"] == [] and state["pool_size"] > 0
    assert (run_dir / "learning_curve.png").stat().st_size > 1000
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [row["labeled"] for row in summary["rows"]] == [16, 24]
    assert "finished 2 iterations" in out

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{run_dir.parent / 'mlruns.db'}")
    runs = mlflow.search_runs(experiment_names=["ci-driver"])
    assert len(runs) == 1 and runs.status[0] == "FINISHED"
    assert runs["params.selection.method"][0] == "mt-avg"
    history = mlflow.tracking.MlflowClient().get_metric_history(runs.run_id[0], "dev.sf")
    assert [m.step for m in history] == [0, 1]
    artifacts = {a.path for a in mlflow.tracking.MlflowClient().list_artifacts(runs.run_id[0])}
    assert {"learning_curve.png", "summary.json", "rounds"} <= artifacts


#: The most lines one iteration may add to the log (a training is ~12 lines: the step
#: line, Ray Train's worker-group lines, 2 evaluation lines, the result line; scoring and
#: selection ~4), plus a fixed allowance for start-up and the summary table.
MAX_LINES_PER_ITERATION = 20
FIXED_LINES = 30

_PREFIX = re.compile(r"^(\x1b\[\d+m)?\([^)]*pid=\d+[^)]*\)(\x1b\[0m)? ?")


def test_the_job_log_is_short_and_has_no_duplicates(reference) -> None:
    """Issue 20: the job log of a tiny experiment holds our lines, each once, and no
    tracebacks (Ray's own start-up and worker lines included)."""
    _, _, text = reference
    lines = [line for line in text.splitlines() if line.strip()]
    assert "finished 2 iterations" in text
    assert "Traceback" not in text, text
    repeated = {line: n for line, n in Counter(lines).items() if n > 1 and "─" not in line}
    assert not repeated, repeated
    ours = [_PREFIX.sub("", line) for line in lines]
    steps = [line for line in ours if line.startswith("train step")]
    assert len(steps) == len(set(steps)) == 4, steps  # 2 evaluations x 2 trainings, once each
    assert not any("Running Dataset" in line or "Progress bars disabled" in line for line in lines)
    assert len(lines) <= FIXED_LINES + 2 * MAX_LINES_PER_ITERATION, text


def test_kill_9_then_relaunch_gives_the_same_labeled_set(reference, tmp_path, ray_address):
    config, ref_dir, _ = reference
    run_dir = tmp_path / "run"
    # Steps 1 and 2 start a local Ray of their own (no RAY_ADDRESS): kill -9 of the
    # launcher's process group must take the driver actor and its workers down with it.
    # 1. kill -9 while the Ray Data actors score the pool of round 0: after the first
    #    scored batches arrived, before the last (the pool is 4 batches of 16).
    proc = launch(config, run_dir, env={"MTAL_RAY_PAUSE_AT": "mid_score:0"})
    wait_for(lambda: (run_dir / ".paused").exists(), proc)
    kill_group(proc)
    assert state_of(run_dir)["step"] == "score"
    assert not (run_dir / "rounds" / "round_0" / "confidence.parquet").exists()
    (run_dir / ".paused").unlink()
    # 2. Relaunch; kill -9 after the selection is persisted, before the state update.
    proc = launch(config, run_dir, env={"MTAL_RAY_PAUSE_AT": "after_select:0"})
    wait_for(lambda: (run_dir / ".paused").exists(), proc)
    kill_group(proc)
    assert state_of(run_dir)["step"] == "select"  # the update never happened
    (run_dir / ".paused").unlink()
    # 3. Relaunch to the end (on the shared Ray: nothing is killed any more): the same
    #    labeled set and pool as the uninterrupted run.
    out = finish(launch(config, run_dir, env={"RAY_ADDRESS": ray_address}))
    assert "resuming" in out
    resumed, ref = state_of(run_dir), state_of(ref_dir)
    assert resumed["step"] == "done"
    assert resumed["labeled"] == ref["labeled"]
    assert (resumed["excluded"], resumed["pool_size"]) == (ref["excluded"], ref["pool_size"])
    selection = json.loads((run_dir / "rounds" / "round_0" / "selection.json").read_text())
    assert selection == json.loads((ref_dir / "rounds" / "round_0" / "selection.json").read_text())


def test_human_annotation_round_trip(shared_data, encoder, tmp_path, ray_address):
    # what this test follows (export, refusal, import, resume) does not depend on where a
    # round trains: local mode (no Train worker process to start) keeps it short
    config = tiny_config(
        shared_data, tmp_path, encoder, annotation__mode="human", training__num_workers=0
    )
    run_dir = tmp_path / "run"
    shared_ray = {**os.environ, "RAY_ADDRESS": ray_address}
    out = finish(launch(config, run_dir, env=shared_ray))
    assert "wait for annotation" in out and "mtal-ray import" in out
    state_before = (run_dir / "state.json").read_text()
    batch_dir = run_dir / "annotation" / "round_0"
    manifest = json.loads((batch_dir / "manifest.json").read_text())
    exported = read_slu(batch_dir / manifest["file"])
    assert exported.num_rows == 8
    prefilled = exported.column("sf.tags").to_pylist()
    assert all(tags is not None for tags in prefilled)  # model predictions pre-filled

    # The annotator writes the gold labels (ATIS train, matched by words).
    gold = read_slu(shared_data / "atis" / "train")
    by_words = {tuple(r["tokens"]): r for r in gold.slice(0, 80).to_pylist()}
    rows = [by_words[tuple(toks)] for toks in exported.column("tokens").to_pylist()]
    returned = tmp_path / "returned"
    write_slu(
        make_table(
            {
                "id": exported.column("id").to_pylist(),
                "tokens": [r["tokens"] for r in rows],
                "sf.tags": [r["sf.tags"] for r in rows],
                "id.label": [r["id.label"] for r in rows],
            }
        ),
        returned,
    )

    # First a malformed file: one slot line with a tag missing.
    lines = (returned / "seq.out").read_text().split("\n")
    good_line = lines[2]
    lines[2] = " ".join(good_line.split(" ")[:-1]) or UNANNOTATED
    (returned / "seq.out").write_text("\n".join(lines))
    cli = [sys.executable, "-m", "mtal_ray.cli", "import", str(run_dir), str(returned)]
    bad = subprocess.run(cli, cwd=REPO, capture_output=True, text=True)
    assert bad.returncode == 2
    assert "returned/seq.out:3:" in bad.stderr or "returned/label:3:" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert (run_dir / "state.json").read_text() == state_before

    lines[2] = good_line
    (returned / "seq.out").write_text("\n".join(lines))
    # A valid import stores the batch and resumes the run to its end (the last round of
    # this 2-iteration run selects nothing more, so no new batch waits).
    ok = subprocess.run(
        cli, cwd=tmp_path, env=shared_ray, capture_output=True, text=True, timeout=600
    )
    assert ok.returncode == 0, ok.stdout[-3000:] + ok.stderr[-3000:]
    assert "imported 8 annotated sentences for round 0" in ok.stdout
    assert "finished 2 iterations" in ok.stdout
    final = state_of(run_dir)
    assert final["step"] == "done"
    assert set(manifest["ids"]) <= set(final["labeled"]["sf"])
    assert len(final["labeled"]["sf"]) == 16 + 8
