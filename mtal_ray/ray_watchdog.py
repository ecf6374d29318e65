"""Ties a local Ray to the process that started it, agents included.

Started by :func:`mtal_ray.ray_session.ensure_ray` right after it starts a local Ray:
``python ray_watchdog.py OWNER_PID ROOT_PID...`` with its stdin a pipe from the owner.
Ray kills its direct children (GCS, raylet, dashboard, monitors) when the owner dies, but
the raylet's agents (dashboard agent, runtime-env agent) outlive it for a minute or more
after a ``kill -9`` (they try to report to the dead GCS first). This process notes every
descendant of the Ray processes (ROOT_PIDs) while the owner lives; when the owner is gone
(the pipe closes, or its pid is no longer the owner) it stops them all: SIGTERM, then
SIGKILL after a grace period. When Ray was shut down normally it just exits.

Standalone on purpose (stdlib and psutil only, no ``mtal_ray`` import): it runs by path,
whatever the owner's working directory and ``sys.path``.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time

import psutil

#: Seconds between two looks at the Ray processes' descendants while the owner lives.
POLL_S = 1.0
#: Seconds a stopped process gets to exit after SIGTERM before SIGKILL.
GRACE_S = 3.0


def _descendants(procs: dict[int, psutil.Process]) -> None:
    """Add the current descendants of the live processes in ``procs`` to it, and drop the
    processes that have exited (nothing left to stop; their pids may be reused).

    One pass over the process table per call: ``Process.children(recursive=True)`` per
    tracked process scanned the whole table once per process (a sweep's Ray has dozens),
    which cost the watchdog ~10 % of a core (``benchmarks/watchdog.py``).
    """
    for pid in [pid for pid, proc in procs.items() if not _is_alive(proc)]:
        del procs[pid]
    children_of: dict[int, list[psutil.Process]] = {}
    for proc in psutil.process_iter(["ppid"]):
        ppid = proc.info.get("ppid")
        if ppid:
            children_of.setdefault(ppid, []).append(proc)
    stack = list(procs)
    while stack:
        for child in children_of.get(stack.pop(), ()):
            if child.pid not in procs:
                procs[child.pid] = child
                stack.append(child.pid)


def _is_alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _alive(procs: dict[int, psutil.Process]) -> list[psutil.Process]:
    return [proc for proc in procs.values() if _is_alive(proc)]


def _name(proc: psutil.Process) -> str:
    try:
        return proc.name()
    except psutil.Error:
        return str(proc.pid)


def stop(procs: dict[int, psutil.Process], grace_s: float = GRACE_S) -> list[str]:
    """SIGTERM every live process in ``procs`` (and what they started), SIGKILL the rest
    after ``grace_s``. Returns the names of those that were still alive."""
    _descendants(procs)
    live = _alive(procs)
    names = [_name(proc) for proc in live]
    for proc in live:
        with contextlib.suppress(psutil.Error):  # psutil refuses a reused pid
            proc.terminate()
    _, remaining = psutil.wait_procs(live, timeout=grace_s)
    for proc in remaining:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(remaining, timeout=grace_s)
    return names


def watch(
    owner: psutil.Process, procs: dict[int, psutil.Process], closed: threading.Event
) -> list[str]:
    """Track ``procs``' descendants until the owner dies (then stop them all) or every one
    of them has exited. Returns the names of the processes stopped."""
    while not closed.wait(POLL_S):
        if not _alive({owner.pid: owner}):  # gone, a zombie, or its pid reused
            break
        _descendants(procs)  # drops the exited ones
        if not procs:  # Ray was shut down: nothing left to guard
            return []
    return stop(procs)


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is for the owner
    owner_pid, *roots = (int(arg) for arg in argv)
    try:
        owner = psutil.Process(owner_pid)
    except psutil.NoSuchProcess:
        owner = None
    procs: dict[int, psutil.Process] = {}
    for pid in roots:
        with contextlib.suppress(psutil.NoSuchProcess):
            procs[pid] = psutil.Process(pid)
    closed = threading.Event()

    def wait_for_eof() -> None:
        try:
            while sys.stdin.buffer.read(4096):
                pass
        finally:
            closed.set()

    threading.Thread(target=wait_for_eof, daemon=True).start()
    stopped = watch(owner, procs, closed) if owner is not None else stop(procs)
    if stopped:
        print(
            f"{time.strftime('%Y-%m-%d %H:%M:%S')} mtal-ray watchdog: process {owner_pid} "
            f"is gone; stopped {len(stopped)} leftover process(es) of its local Ray: "
            + ", ".join(stopped),
            file=sys.stderr,
            flush=True,
        )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except OSError:  # e.g. its log gone with the owner's session directory
        sys.exit(0)
