"""The watchdog that ties a local Ray to its launcher (mtal_ray/ray_watchdog.py), without Ray.

An "owner" process starts a stand-in Ray process (``sleep`` under a shell, so it has a child
of its own) and the watchdog, as :func:`mtal_ray.ray_session.ensure_ray` does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

psutil = pytest.importorskip("psutil")

WATCHDOG = Path(__file__).resolve().parents[1] / "mtal_ray" / "ray_watchdog.py"

_OWNER = f"""
import subprocess, sys, time
# a stand-in for a Ray process that starts its own child (as the raylet starts its agents);
# its own session, so the owner's death does not reach it by signal
ray = subprocess.Popen(["sh", "-c", "sleep 300 & sleep 300; wait"], start_new_session=True)
time.sleep(0.5)
watchdog = subprocess.Popen(
    [sys.executable, {str(WATCHDOG)!r}, str(__import__("os").getpid()), str(ray.pid)],
    stdin=subprocess.PIPE, start_new_session=True,
)
print(ray.pid, watchdog.pid, flush=True)
if sys.argv[1] == "stop-ray":
    time.sleep(1.5)
    ray.kill(); ray.wait()
time.sleep(300)
"""


def _start_owner(mode: str) -> tuple[subprocess.Popen, psutil.Process, list, psutil.Process]:
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER, mode], stdout=subprocess.PIPE, text=True
    )
    ray_pid, watchdog_pid = (int(x) for x in owner.stdout.readline().split())
    ray = psutil.Process(ray_pid)
    deadline = time.monotonic() + 10
    while not ray.children() and time.monotonic() < deadline:
        time.sleep(0.1)
    return owner, ray, ray.children(recursive=True), psutil.Process(watchdog_pid)


def _gone(procs: list, timeout: float) -> list:
    deadline = time.monotonic() + timeout
    left = procs
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = [p for p in left if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    return left


def _cleanup(owner: subprocess.Popen, procs: list) -> None:
    if owner.poll() is None:
        owner.kill()
        owner.wait(timeout=10)
    for proc in procs:
        if proc.is_running():
            proc.kill()


def test_a_killed_owner_takes_its_processes_and_their_children_along() -> None:
    owner, ray, children, watchdog = _start_owner("hold")
    try:
        assert children, "the stand-in Ray process started no child"
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait(timeout=10)
        assert not _gone([ray, *children], timeout=10)
        assert not _gone([watchdog], timeout=10), "the watchdog stays after its work"
    finally:
        _cleanup(owner, [ray, *children, watchdog])


def test_the_watchdog_leaves_when_ray_was_shut_down() -> None:
    owner, ray, children, watchdog = _start_owner("stop-ray")
    try:
        for child in children:  # Ray's shutdown stops its agents too
            child.kill()
        assert not _gone([watchdog], timeout=15)
        assert owner.poll() is None  # the owner itself is left alone
    finally:
        _cleanup(owner, [ray, *children, watchdog])
