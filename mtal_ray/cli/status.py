"""``mtal-ray status RUN_DIR [--watch]``: where a run (or a sweep) stands, from its files.

Reads ``state.json`` (iteration, step, labeled sets, each round's scores and step times),
the run's lock (whether a process runs it now) and the annotation folder (whether a batch
waits for people); no Ray, no torch, no MLflow. The ETA of the running step is the mean
time of that step in the earlier iterations minus the time since the previous step ended
(when ``state.json`` was last written). A sweep directory lists its trials. ``--watch``
prints it again every few seconds until the run is no longer running (or Ctrl-C).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtal_ray.errors import MtalError

__all__ = ["RunStatus", "read_status", "register", "render", "status_lines"]

STATE_FILE = "state.json"
LOCK_FILE = ".lock"
TRIALS_DIR = "trials"
#: The steps whose time is shown: a round record's ``seconds["step.<name>"]`` (the whole
#: step), or for runs written before those were recorded, ``seconds["<name>"]``.
TIMED_STEPS = ("train", "score", "select", "annotate", "update")


@dataclass
class RunStatus:
    """Where one run stands."""

    run_dir: Path
    status: str  # running | finished | waiting for annotation | stopped | not started
    iteration: int = 0
    iterations: int = 0
    step: str = "train"
    labeled: dict[str, int] = field(default_factory=dict)
    pool: int = 0
    cost_spent: float = 0.0
    annotated_cost: float = 0.0  # the cost model on the labels given (random included)
    last_iteration: int | None = None
    dev: dict[str, float] = field(default_factory=dict)
    test: dict[str, float] = field(default_factory=dict)
    step_seconds: dict[str, float] = field(default_factory=dict)
    since_s: float | None = None  # seconds since the previous step ended
    eta_s: float | None = None
    disk_bytes: int = 0
    holder: str | None = None
    waiting: str | None = None
    #: al.stopping, per task: the iteration it stopped at (None: still annotated).
    stopped_at: dict[str, int | None] = field(default_factory=dict)
    stop_reason: str | None = None  # why the run ended early, when it did


def _disk_bytes(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def _holder(run_dir: Path) -> str | None:
    """Who holds the run's lock now (``pid N on HOST``), or None."""
    path = run_dir / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:  # someone holds it
            try:
                info = json.loads(path.read_text(encoding="utf-8") or "{}")
            except (OSError, ValueError):
                info = {}
            pid, host = info.get("pid", "?"), info.get("host", "?")
            return f"pid {pid} on {host}"
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _waiting_batch(run_dir: Path, iteration: int) -> str | None:
    folder = run_dir / "annotation" / f"round_{iteration}"
    if (folder / "manifest.json").is_file() and not (folder / "imported.parquet").exists():
        return str(folder)
    return None


def _task_order(run_dir: Path) -> list[str]:
    try:
        config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
        tasks = (config.get("data") or {}).get("tasks") or []
    except (OSError, ValueError, AttributeError):
        return []
    return [str(t) for t in tasks]


def _ordered(values: dict[str, Any], order: list[str]) -> dict[str, Any]:
    rank = {t: i for i, t in enumerate(order)}
    return dict(sorted(values.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))


def read_status(run_dir: Path, now: float | None = None) -> RunStatus:
    """The status of the run in ``run_dir`` (raises :class:`MtalError` if it is none)."""
    run_dir = Path(run_dir)
    path = run_dir / STATE_FILE
    if not run_dir.is_dir():
        raise MtalError(f"{run_dir}: no such run directory")
    holder = _holder(run_dir)
    if not path.is_file():
        if (run_dir / TRIALS_DIR).is_dir():
            raise MtalError(f"{run_dir} is a sweep directory")  # handled by the caller
        status = "starting" if holder else "not started"
        return RunStatus(run_dir, status, holder=holder, disk_bytes=_disk_bytes(run_dir))
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        mtime = path.stat().st_mtime
    except (OSError, ValueError) as err:
        raise MtalError(f"{path}: cannot read the run state ({err})") from None
    if not isinstance(state, dict):
        raise MtalError(f"{path}: not a run state")
    now = time.time() if now is None else now
    iteration, step = int(state.get("iteration", 0)), str(state.get("step", "train"))
    rounds = [r for r in state.get("rounds", []) if isinstance(r, dict)]
    order = _task_order(run_dir)  # state.json sorts its keys; show the config's order
    labeled = _ordered({t: len(ids) for t, ids in (state.get("labeled") or {}).items()}, order)
    out = RunStatus(
        run_dir,
        "stopped",
        iteration=iteration,
        iterations=int(state.get("iterations", 0)),
        step=step,
        labeled=labeled,
        pool=int(state.get("pool_size", len(state.get("pool") or []))),
        cost_spent=float(state.get("cost_spent") or 0.0),
        annotated_cost=float(state.get("annotated_cost_spent") or 0.0),
        disk_bytes=_disk_bytes(run_dir),
        holder=holder,
    )
    evaluated = [r for r in rounds if r.get("dev")]
    if evaluated:
        last = evaluated[-1]
        out.last_iteration = int(last.get("iteration", len(evaluated) - 1))
        out.dev = _ordered(dict(last.get("dev") or {}), order)
        out.test = _ordered(dict(last.get("test") or {}), order)
    for name in TIMED_STEPS:
        times = [
            float(seconds.get(f"step.{name}", seconds.get(name)))
            for seconds in (r.get("seconds") or {} for r in rounds)
            if f"step.{name}" in seconds or name in seconds
        ]
        if times:
            out.step_seconds[name] = sum(times) / len(times)
    stopping = state.get("stopping") if isinstance(state.get("stopping"), dict) else {}
    out.stopped_at = _ordered(
        {str(t): (e or {}).get("stopped_at") for t, e in stopping.items()}, order
    )
    if step == "done":
        if state.get("stop_reason"):
            out.stop_reason = str(state["stop_reason"])
        elif out.stopped_at and all(v is not None for v in out.stopped_at.values()):
            out.stop_reason = "every task stopped"
    waiting = _waiting_batch(run_dir, iteration) if step == "annotate" else None
    if step == "done":
        out.status = "finished"
    elif waiting and not holder:
        out.status, out.waiting = "waiting for annotation", waiting
    elif holder:
        out.status = "running"
        out.since_s = max(0.0, now - mtime)
        if step in out.step_seconds:
            out.eta_s = max(0.0, out.step_seconds[step] - out.since_s)
    return out


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"  # pragma: no cover


def _scores(scores: dict[str, float]) -> str:
    return ", ".join(f"{t} {v:.4f}" for t, v in scores.items())


def render(status: RunStatus) -> list[str]:
    """The status as a few lines of text."""
    head = f"run {status.run_dir}: {status.status}"
    if status.holder:
        head += f" ({status.holder})"
    lines = [head]
    if status.iterations:
        where = f"iteration {status.iteration}/{status.iterations - 1}"
        if status.status == "finished" and status.stop_reason:
            where = (
                f"ended early after iteration {status.iteration} of {status.iterations - 1} "
                f"(al.stopping: {status.stop_reason})"
            )
        elif status.status == "finished":
            where = f"{status.iterations} iterations done"
        else:
            where += f", step {status.step}"
            if status.since_s is not None:
                where += f" (running for {_duration(status.since_s)}"
                if status.eta_s is not None:
                    where += f", ETA {_duration(status.eta_s)}"
                where += ")"
        lines.append(where)
    if status.labeled:
        total = ", ".join(f"{t} {n}" for t, n in status.labeled.items())
        lines.append(
            f"labeled: {total}; pool {status.pool}"
            + (f"; cost spent {status.cost_spent:g}" if status.cost_spent else "")
            + (f"; annotated cost {status.annotated_cost:g}" if status.annotated_cost else "")
        )
    if status.last_iteration is not None:
        line = f"scores (iteration {status.last_iteration}): dev {_scores(status.dev)}"
        if status.test:
            line += f"; test {_scores(status.test)}"
        lines.append(line)
    if status.stopped_at:
        lines.append(
            "stopping: "
            + ", ".join(
                f"{t} stopped at iteration {it}" if it is not None else f"{t} still annotated"
                for t, it in status.stopped_at.items()
            )
        )
    if status.step_seconds:
        times = ", ".join(f"{s} {_duration(v)}" for s, v in status.step_seconds.items())
        lines.append(f"time per step (mean): {times}")
    if status.waiting:
        lines.append(
            f"waiting for annotation: {status.waiting}; "
            f"then `mtal-ray import {status.run_dir} FILE…`"
        )
    lines.append(f"disk: {_size(status.disk_bytes)}")
    return lines


def _sweep_lines(sweep_dir: Path, now: float | None) -> list[str]:
    trials = sorted(p for p in (sweep_dir / TRIALS_DIR).iterdir() if p.is_dir())
    lines = [f"sweep {sweep_dir}: {len(trials)} trial(s); disk {_size(_disk_bytes(sweep_dir))}"]
    for trial in trials:
        try:
            recorded = json.loads((trial / "trial.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            recorded = {}
        try:
            st = read_status(trial, now)
        except MtalError:
            lines.append(f"  {trial.name}: {recorded.get('status', 'unknown')}")
            continue
        label = recorded.get("status", st.status)
        if not st.iterations:  # no state yet
            lines.append(f"  {trial.name}: {label}")
            continue
        where = (
            "done"
            if st.status == "finished"
            else f"iteration {st.iteration}/{st.iterations - 1}, step {st.step}"
        )
        scores = f"; dev {_scores(st.dev)}" if st.dev else ""
        lines.append(f"  {trial.name}: {label}, {where}{scores}")
    return lines


def status_lines(path: Path, now: float | None = None) -> tuple[list[str], bool]:
    """The lines for a run or sweep directory, and whether anything still runs there."""
    path = Path(path)
    if (path / TRIALS_DIR).is_dir() and not (path / STATE_FILE).is_file():
        lines = _sweep_lines(path, now)
        return lines, _holder(path) is not None
    st = read_status(path, now)
    return render(st), st.status in ("running", "starting")


def _status(args: argparse.Namespace) -> int:
    path = Path(args.run_dir)
    if not args.watch:
        lines, _ = status_lines(path)
        print("\n".join(lines))
        return 0
    try:
        while True:
            lines, running = status_lines(path)
            if sys.stdout.isatty():
                print("\x1b[2J\x1b[H", end="")
            print(time.strftime("%H:%M:%S"), "\n".join(lines), sep="\n", flush=True)
            if not running:
                return 0
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``mtal-ray status``."""
    status = subparsers.add_parser(
        "status", help="where a run (or sweep) stands, from its files (no Ray needed)"
    )
    status.add_argument("run_dir", help="a run directory (or a sweep directory)")
    status.add_argument(
        "--watch", action="store_true", help="refresh until the run stops (Ctrl-C ends it)"
    )
    status.add_argument(
        "--interval", type=float, default=5.0, help="seconds between refreshes (--watch)"
    )
    status.set_defaults(func=_status)
