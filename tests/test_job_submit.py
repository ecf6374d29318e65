"""``ray job submit -- python -m mtal_ray.launch ...`` against a head started by ``ray start``.

The head runs with job authentication disabled (Ray 2.60 enables token auth by default;
FIELD_NOTES) on free ports in a private temp dir, and is stopped by process id at the end,
never with ``ray stop`` (which would kill every Ray on the machine).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ray_head import free_port, start_head, stop_head

pytestmark = [pytest.mark.integration, pytest.mark.realdata]

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def ray_head():
    """A head with the dashboard (and its job server) on a free port, as `ray start`
    leaves one; yields the dashboard's address and the environment to submit with."""
    # A short path: Ray's unix socket paths must stay under 107 characters.
    temp_dir = Path(f"/tmp/mtal_head_{os.getpid()}")
    dashboard = free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    start_head(temp_dir, dashboard_port=dashboard, env=env)
    try:
        yield f"http://127.0.0.1:{dashboard}", env
    finally:
        stop_head(temp_dir)


def test_ray_job_submit_runs_the_launcher(ray_head, shared_data, tmp_path):
    address, env = ray_head
    config = {
        "seed": 1,
        "data": {
            "path": str(shared_data / "atis"),
            "tasks": ["sf", "id"],
            "initial_count": 12,
            "dev_multiple": 1.0,
            "limit_train": 40,
            "limit_eval": 12,
        },
        "training": {"num_workers": 1, "batch_size": 8, "max_steps": 4, "eval_every": 2},
        "al": {"iterations": 1},
        "tracking": {"experiment": "ci-job-submit"},
    }
    config_path = tmp_path / "job.yaml"
    config_path.write_text(yaml.safe_dump(config))
    run_dir = tmp_path / "run"
    runtime_env = {"working_dir": str(REPO), "excludes": [".git", "runs", "*.egg-info"]}
    submitted = subprocess.run(
        [
            sys.executable,
            "-m",
            "ray.scripts.scripts",
            "job",
            "submit",
            "--address",
            address,
            "--runtime-env-json",
            json.dumps(runtime_env),
            "--",
            "python",
            "-m",
            "mtal_ray.launch",
            "--config",
            str(config_path),
            "--run-dir",
            str(run_dir),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = submitted.stdout + submitted.stderr
    assert submitted.returncode == 0, output[-4000:]
    assert "succeeded" in output
    assert "warning: the run directory" not in output  # an absolute path outside the copy
    state = json.loads((run_dir / "state.json").read_text())
    assert state["step"] == "done"
    assert json.loads((run_dir / "summary.json").read_text())["rows"][0]["labeled"] == 12
