"""What the local-Ray watchdog costs per look at the Ray process tree.

``mtal_ray/ray_watchdog.py`` looks at the descendants of a local Ray's processes every
``POLL_S`` seconds for as long as the run lasts. This script builds a process tree of the
size a sweep's Ray has (a root with ``--children`` sleeping children; a local Ray with a
Train fit and Ray Data running has 30-50 processes), and times, in the same run, one look
with:

* **ours**: one pass over the process table per look, exited processes dropped (the
  liveness check of each tracked process done once);
* **baseline**: what the watchdog did before — ``Process.children(recursive=True)`` for
  every tracked process (each call scans the whole process table) and every process ever
  seen kept in the set.

    python benchmarks/watchdog.py                 # 40 children, 30 looks per arm
    python benchmarks/watchdog.py --children 80

Prints the CPU time per look of each arm, the ratio, and what each costs as a share of one
core at the watchdog's poll interval. Output: ``benchmarks/results/watchdog.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "mtal_ray"))

import ray_watchdog  # noqa: E402  (standalone module: runs by path, as the watchdog does)

RESULT = REPO / "benchmarks" / "results" / "watchdog.json"


def baseline_descendants(procs: dict[int, psutil.Process]) -> None:
    """The watchdog's look before: a recursive ``children()`` per tracked process."""
    for proc in list(procs.values()):
        try:
            children = proc.children(recursive=True)
        except psutil.Error:
            continue
        for child in children:
            procs.setdefault(child.pid, child)


def baseline_alive(procs: dict[int, psutil.Process]) -> list[psutil.Process]:
    live = []
    for proc in procs.values():
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                live.append(proc)
        except psutil.Error:
            continue
    return live


def baseline_look(procs: dict[int, psutil.Process]) -> int:
    """The watchdog's look before: descendants, then a liveness check of every process."""
    baseline_descendants(procs)
    return len(baseline_alive(procs))


def our_look(procs: dict[int, psutil.Process]) -> int:
    """The watchdog's look now (``ray_watchdog.watch``): descendants, exited ones dropped."""
    ray_watchdog._descendants(procs)
    return len(procs)


def time_looks(root: int, looks: int, look) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    """Median CPU seconds of one look, and how many live processes it tracked."""
    procs = {root: psutil.Process(root)}
    look(procs)  # the first look fills the set; time the steady state
    times = []
    for _ in range(looks):
        started = time.process_time()
        tracked = look(procs)
        times.append(time.process_time() - started)
    return statistics.median(times), tracked


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--children", type=int, default=40)
    parser.add_argument("--looks", type=int, default=30)
    parser.add_argument("--output", default=str(RESULT))
    args = parser.parse_args(argv)
    script = f"for i in $(seq {args.children}); do sleep 600 & done; wait"
    tree = subprocess.Popen(["bash", "-c", script])
    try:
        deadline = time.monotonic() + 30
        while len(psutil.Process(tree.pid).children()) < args.children:
            if time.monotonic() > deadline:
                raise SystemExit("watchdog: the process tree did not come up")
            time.sleep(0.05)
        table = len(psutil.pids())
        ours, tracked = time_looks(tree.pid, args.looks, our_look)
        base, base_tracked = time_looks(tree.pid, args.looks, baseline_look)
    finally:
        children = psutil.Process(tree.pid).children(recursive=True)
        tree.kill()  # first, so that bash reports no killed jobs
        tree.wait()
        for child in children:
            child.kill()
    assert tracked == base_tracked == args.children + 1, (tracked, base_tracked)
    poll = ray_watchdog.POLL_S
    result = {
        "children": args.children,
        "processes_on_the_machine": table,
        "looks": args.looks,
        "cpu_s_per_look": {"ours": round(ours, 5), "baseline": round(base, 5)},
        "ratio": round(base / max(ours, 1e-9), 1),
        "share_of_a_core": {"ours": round(ours / poll, 4), "baseline": round(base / poll, 4)},
    }
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(
        f"{args.children + 1} tracked processes, {table} on the machine: one look "
        f"{ours * 1000:.1f} ms of CPU (ours) against {base * 1000:.1f} ms (baseline), "
        f"{result['ratio']}x; at one look per {poll:g} s: {ours / poll:.1%} against "
        f"{base / poll:.1%} of a core"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
