"""``ray job submit -- python -m mtal_ray.launch ...`` against a head started by ``ray start``.

The head runs with job authentication disabled (Ray 2.60 enables token auth by default;
FIELD_NOTES) on free ports in a private temp dir, and is stopped by process id at the end,
never with ``ray stop`` (which would kill every Ray on the machine).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.realdata]

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def processes_of(temp_dir: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(str(temp_dir) in part for part in proc.info["cmdline"] or []):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.fixture
def ray_head(tmp_path_factory):
    ray = shutil.which("ray")
    if ray is None:
        pytest.skip("the `ray` command is not on PATH")
    # A short path: Ray's unix socket paths must stay under 107 characters.
    temp_dir = Path(f"/tmp/mtal_head_{os.getpid()}")
    dashboard = free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    cmd = [
        ray,
        "start",
        "--head",
        "--num-cpus=2",
        "--include-dashboard=true",
        f"--port={free_port()}",
        f"--dashboard-port={dashboard}",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--ray-client-server-port={free_port()}",
        f"--temp-dir={temp_dir}",
        "--disable-usage-stats",
    ]
    started = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield f"http://127.0.0.1:{dashboard}", env
    finally:
        for proc in processes_of(temp_dir):
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        time.sleep(1)
        shutil.rmtree(temp_dir, ignore_errors=True)


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
