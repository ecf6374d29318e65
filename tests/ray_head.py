"""Start and stop a local Ray head with ``ray start`` for tests (no ``ray stop``).

``ray stop`` kills every Ray on the machine by process name; here the head lives in a
private, short temp dir (Unix socket paths must stay under 107 characters) and is stopped
by killing the processes whose command line names that dir. Workers exit with their raylet.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import psutil


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def processes_of(temp_dir: Path) -> list[psutil.Process]:
    """The processes whose command line mentions ``temp_dir`` (the head's own processes)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if proc.pid == os.getpid():
            continue
        try:
            if any(str(temp_dir) in part for part in proc.info["cmdline"] or []):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def start_head(
    temp_dir: Path,
    *,
    num_cpus: int = 2,
    dashboard_port: int | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 180,
) -> str:
    """``ray start --head`` on free ports in ``temp_dir``; returns the GCS address.

    The head keeps idle workers as a local Ray of ours does
    (:func:`mtal_ray.ray_session.worker_soft_limit`) and runs with token authentication
    off (``RAY_AUTH_MODE=disabled``; Ray 2.60 enables it by default and a plain
    ``ray.init(address=...)`` from a test then fails with "InvalidAuthToken"; FIELD_NOTES). With ``dashboard_port`` the dashboard (and the
    job server) runs on that port. Raises AssertionError with Ray's output when the head
    does not come up.
    """
    port = free_port()
    cmd = [
        sys.executable, "-m", "ray.scripts.scripts", "start", "--head",
        f"--num-cpus={num_cpus}",
        f"--port={port}",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--ray-client-server-port={free_port()}",
        f"--temp-dir={temp_dir}",
        "--disable-usage-stats",
    ]  # fmt: skip
    if dashboard_port is None:
        cmd.append("--include-dashboard=false")
    else:
        cmd += [
            "--include-dashboard=true",
            f"--dashboard-port={dashboard_port}",
            "--dashboard-host=127.0.0.1",
        ]
    from mtal_ray.ray_session import SOFT_LIMIT_SETTING, worker_soft_limit

    environ = {
        **(env or os.environ),
        "RAY_AUTH_MODE": "disabled",
        # as a local Ray of ours: idle scoring workers outlive a training (ray_session)
        f"RAY_{SOFT_LIMIT_SETTING}": str(worker_soft_limit(num_cpus)),
    }
    for _attempt in (1, 2):  # a loaded machine can time the node's start-up out: retry once
        started = subprocess.run(cmd, env=environ, capture_output=True, text=True, timeout=timeout)
        if started.returncode == 0:
            return f"127.0.0.1:{port}"
        stop_head(temp_dir)
    raise AssertionError(f"ray start failed twice:\n{started.stdout}\n{started.stderr}")


def stop_head(temp_dir: Path) -> None:
    """Kill the head's processes (by their temp dir) and remove the dir."""
    for proc in processes_of(temp_dir):
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    time.sleep(1)
    shutil.rmtree(temp_dir, ignore_errors=True)
