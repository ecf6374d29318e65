"""One process per run directory (:mod:`mtal_ray.run_lock`).

Unit tests in this process, and the launcher against a directory another process holds:
the second launch exits 2 at once naming the holder's pid and host; after ``kill -9`` of
the holder the lock is stale and the next command takes it over with one warning.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mtal_ray.errors import MtalError
from mtal_ray.run_lock import LOCK_FILE, RunLockedError, clear_directory, locked, run_lock

REPO = Path(__file__).resolve().parents[1]

HOLD = """
import sys, time
from mtal_ray.run_lock import run_lock
run_lock(sys.argv[1], command="test holder")
print("locked", flush=True)
time.sleep(120)
"""


def _holder(directory: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(directory)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_lock_records_the_holder_and_release_removes_what_it_made(tmp_path):
    target = tmp_path / "a" / "run"
    lock = run_lock(target, command="unit")
    record = json.loads((target / LOCK_FILE).read_text())
    assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
    assert record["command"] == "unit"
    assert (target / LOCK_FILE).stat().st_mode & 0o777 == 0o644
    assert run_lock(target) is lock  # held by this process: taking it again is a no-op
    lock.release()
    assert not (tmp_path / "a").exists()  # both folders it created, empty again


def test_release_keeps_a_directory_that_holds_something(tmp_path):
    with locked(tmp_path / "run") as lock:
        (lock.directory / "state.json").write_text("{}")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["state.json"]


def test_nested_locked_blocks_keep_the_outer_lock(tmp_path):
    with locked(tmp_path / "run") as outer:
        with locked(tmp_path / "run") as inner:
            assert inner is outer
        assert outer.held and (tmp_path / "run" / LOCK_FILE).exists()
    assert not outer.held


def test_clear_directory_keeps_the_lock(tmp_path):
    with locked(tmp_path / "run") as lock:
        (lock.directory / "rounds" / "round_0").mkdir(parents=True)
        (lock.directory / "state.json").write_text("{}")
        clear_directory(lock.directory)
        assert [p.name for p in lock.directory.iterdir()] == [LOCK_FILE]


def test_a_file_or_a_file_parent_is_one_clear_error(tmp_path):
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(MtalError, match="is a file, not a folder"):
        run_lock(file)
    with pytest.raises(MtalError, match=r"its parent path .* is a file"):
        run_lock(file / "run")
    assert file.read_text() == "x"


def test_another_process_holding_the_lock_is_refused_and_a_dead_one_is_stale(tmp_path):
    target = tmp_path / "run"
    proc = _holder(target)
    try:
        with pytest.raises(RunLockedError) as caught:
            run_lock(target)
        message = str(caught.value)
        assert f"pid {proc.pid} on host {socket.gethostname()}" in message
        assert "test holder" in message
    finally:
        proc.kill()
        proc.wait()
    warnings: list[str] = []
    with locked(target, warn=warnings.append):
        assert len(warnings) == 1
        assert "stale lock" in warnings[0] and f"pid {proc.pid}" in warnings[0]
        assert "no longer running" in warnings[0]
        assert json.loads((target / LOCK_FILE).read_text())["pid"] == os.getpid()


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def test_second_launch_on_a_held_directory_exits_2_at_once(tmp_path):
    """Two launches on one directory: the second stops in well under 15 s, before Ray."""
    run_dir = tmp_path / "run"
    proc = _holder(run_dir)
    before = (run_dir / LOCK_FILE).read_bytes()
    try:
        for command in (
            ["-m", "mtal_ray.launch", "--config", "configs/quickstart.yaml"],
            ["-m", "mtal_ray.cli", "run", "--config", "configs/quickstart.yaml"],
            ["-m", "mtal_ray.cli", "run", "--config", "configs/quickstart.yaml", "--restart"],
        ):
            started = time.monotonic()
            done = _cli(*command, "--run-dir", str(run_dir), "tracking.enabled=false")
            seconds = time.monotonic() - started
            assert done.returncode == 2, done.stderr
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
            assert f"pid {proc.pid} on host {socket.gethostname()}" in lines[0]
            assert seconds < 15
        started = time.monotonic()
        done = _cli("-m", "mtal_ray.cli", "import", str(run_dir), str(tmp_path / "batch"))
        assert done.returncode == 2 and f"pid {proc.pid}" in done.stderr
        assert time.monotonic() - started < 15
        assert "Traceback" not in done.stderr
        assert (run_dir / LOCK_FILE).read_bytes() == before  # the holder's lock untouched
        assert [p.name for p in run_dir.iterdir()] == [LOCK_FILE]  # --restart deleted nothing
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # the holder died without releasing: the next command takes the stale lock over
    done = _cli("-m", "mtal_ray.cli", "import", str(run_dir), str(tmp_path / "batch"))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2, done.stderr
    assert lines[0].startswith("warning: taking over the stale lock") and str(proc.pid) in lines[0]
    assert lines[1].startswith("error: ") and "no state.json" in lines[1]
    assert not (run_dir / LOCK_FILE).exists()  # released again


def test_a_sweep_directory_is_locked_too(tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = _holder(sweep_dir)
    try:
        done = _cli(
            "-m",
            "mtal_ray.cli",
            "sweep",
            "--config",
            "configs/sweep_quickstart.yaml",
            "--sweep-dir",
            str(sweep_dir),
            "tracking.enabled=false",
        )
    finally:
        proc.kill()
        proc.wait()
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: sweep directory") and f"pid {proc.pid}" in done.stderr
