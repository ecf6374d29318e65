"""The AL loop on a pool of a million sentences: memory, scoring throughput, selection time.

Runs the real launcher (``python -m mtal_ray.launch``: Ray Train, Ray Data scoring actors,
selection, oracle annotation) on the generated SF + ID corpus with a pool of ``--pool``
sentences (default 10^6), EC confidences (MT-AVG reads no MC dropout) and a tiny random BERT
encoder (``mtal_ray.models.tiny``: 3 layers, 32 hidden, the MiniLM tokenizer), so that the
pool, not the model, is what is large. It reports

* the driver's peak RSS (the loop runs in the ``ray::DriverActor`` process; its Linux
  high-water mark) and the launcher's (``getrusage``), next to the Arrow size of the corpus
  the driver holds (the baseline a driver cannot go below),
* each Ray process's peak RSS (scoring actors, Train workers, ...: their high-water marks,
  read every 0.2 s by process title),
* scoring throughput and selection time per round (from the run's ``state.json``), and the
  size of ``state.json`` (the pool is derived, never listed in it),
* in the same run, scoring throughput with Ray Data blocks of whole buckets (ours,
  ``scoring.block_rows: 4096``) against one block per 64-row batch (the baseline, what
  ``score_pool`` did before), on ``--compare-rows`` sentences with the run's first model.

    python benchmarks/scale.py                     # 10^6 sentences, 2 iterations
    python benchmarks/scale.py --pool 20000        # a quick look

The run directory is ``runs/scale/pool_<N>``: re-running continues an interrupted run (the
loop resumes; the peaks then cover the resumed part only, and the result says so); pass
``--fresh`` to start over. Output: ``benchmarks/results/scale.json`` and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from mtal_ray.data.atomic import atomic_write_text

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "scale.json"
#: The issue's goal for the driver's peak RSS on a 10^6-sentence pool.
GOAL_DRIVER_BYTES = 2 * 1024**3


def _config(args: argparse.Namespace, run_dir: Path, encoder: str) -> dict[str, Any]:
    return {
        "seed": 0,
        "data": {
            "path": "synthetic",
            "tasks": ["sf", "id"],
            "initial_count": args.initial,
            "dev_multiple": 1.0,
            "synthetic": {"n_train": args.pool + args.initial, "n_dev": 200, "n_test": 200},
        },
        "model": {"encoder": encoder, "sharing": "smt"},
        "training": {
            "num_workers": 1,
            "cpus_per_worker": 1,
            "batch_size": 32,
            "max_steps": args.train_steps,
            "eval_every": args.train_steps,
        },
        "scoring": {"concurrency": args.actors, "cpus_per_actor": 1},
        "selection": {"method": "mt-avg", "n": args.select},
        "al": {"iterations": args.iterations, "run_dir": str(run_dir)},
        "tracking": {"enabled": False},
    }


def _high_water_mark(pid: int) -> int | None:
    """The process's peak RSS so far (Linux ``VmHWM``: exact, not a sample), in bytes."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


class RssSampler(threading.Thread):
    """Peak RSS per Ray process title (``ray::DriverActor``, ``ray::MapWorker(...)``...)
    among the descendants of ``root`` (the launcher: its Ray, not another one on the
    machine), read every ``interval`` seconds from each process's own high-water mark
    until :meth:`stop` (a process that lives less than ``interval`` may be missed)."""

    def __init__(self, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.root: int | None = None
        self.interval = interval
        self.peaks: dict[str, int] = defaultdict(int)
        self._halt = threading.Event()

    def run(self) -> None:
        import psutil

        while not self._halt.is_set():
            try:
                family = psutil.Process(self.root).children(recursive=True) if self.root else []
            except psutil.Error:
                family = []
            for proc in family:
                try:
                    title = (proc.cmdline() or [proc.name()])[0]
                except (psutil.Error, IndexError):
                    continue
                if not title.startswith("ray::") or "IDLE" in title:
                    continue  # Ray's own services (gcs_server, raylet) are not ours to size
                peak = _high_water_mark(proc.pid)
                if peak is not None:
                    name = title.split(" ")[0].split(".")[0]  # the actor, not its method
                    self.peaks[name] = max(self.peaks[name], peak)
            self._halt.wait(self.interval)

    def stop(self) -> dict[str, int]:
        self._halt.set()
        self.join()
        return dict(self.peaks)


def drive(config_path: str, report: str) -> int:
    """The launcher in this process, then its own peak RSS into ``report`` (JSON)."""
    from mtal_ray.cli import main

    started = time.perf_counter()
    try:
        code = main(["run", "--config", config_path])
    finally:
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        Path(report).write_text(
            json.dumps({"peak_rss": peak_kib * 1024, "seconds": time.perf_counter() - started})
        )
    return int(code or 0)


def compare_blocks(checkpoint: str, rows: int) -> dict[str, Any]:
    """Scoring throughput (EC, one actor) with one block per batch vs ``block_rows``."""
    from mtal_ray.data import make_synthetic_corpus
    from mtal_ray.ray_session import ensure_ray
    from mtal_ray.scoring.config import ScoringConfig
    from mtal_ray.scoring.pool import score_pool

    pool = make_synthetic_corpus(rows, 1, 1, seed=1).splits["train"].select(["id", "tokens"])
    ensure_ray()
    out: dict[str, Any] = {"rows": rows}
    for name, block_rows in (("baseline_block_per_batch", 64), ("ours_block_rows_4096", 4096)):
        cfg = ScoringConfig(ec_only=True, batch_size=64, block_rows=block_rows)
        started = time.perf_counter()
        phases: dict[str, float] = {}
        score_pool(pool, checkpoint, cfg, phases=phases)
        seconds = time.perf_counter() - started
        out[name] = {
            "seconds": round(seconds, 1),
            "rows_per_s": round(rows / seconds, 1),
            "stream_rows_per_s": round(rows / phases["stream"], 1) if phases["stream"] else None,
        }
    out["ratio"] = round(
        out["ours_block_rows_4096"]["rows_per_s"] / out["baseline_block_per_batch"]["rows_per_s"],
        2,
    )
    return out


def _mib(n: float) -> str:
    return f"{n / 1024**2:,.0f} MiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pool", type=int, default=1_000_000, help="pool sentences")
    parser.add_argument("--initial", type=int, default=200, help="initial labeled sentences")
    parser.add_argument("--select", type=int, default=1000, help="sentences per selection")
    parser.add_argument("--iterations", type=int, default=2, help="trainings (rounds)")
    parser.add_argument("--train-steps", type=int, default=20, help="steps per training")
    parser.add_argument("--actors", type=int, default=1, help="scoring actors")
    parser.add_argument("--fresh", action="store_true", help="start the run over")
    parser.add_argument(
        "--compare-rows",
        type=int,
        default=50_000,
        help="sentences for the block-size comparison (0: skip it)",
    )
    parser.add_argument("--output", default=str(RESULTS))
    parser.add_argument("--drive", nargs=2, help=argparse.SUPPRESS)  # internal: CONFIG REPORT
    args = parser.parse_args(argv)
    if args.drive:
        return drive(*args.drive)

    import shutil

    import pyarrow.parquet as pq
    import yaml

    from mtal_ray.data import make_synthetic_corpus
    from mtal_ray.models.tiny import make_tiny_encoder

    work = REPO / "runs" / "scale"
    run_dir = work / f"pool_{args.pool}"
    if args.fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    resumed = (run_dir / "state.json").exists()
    encoder = make_tiny_encoder(work / "tiny_encoder")
    config_path = work / f"pool_{args.pool}.yaml"
    config_path.write_text(yaml.safe_dump(_config(args, run_dir, encoder), sort_keys=False))
    # the baseline: what the corpus itself takes in Arrow (the driver holds it once)
    corpus = make_synthetic_corpus(args.pool + args.initial, 200, 200, seed=0)
    arrow_bytes = sum(t.nbytes for t in corpus.splits.values())
    del corpus

    report = work / f"pool_{args.pool}.driver.json"
    sampler = RssSampler()
    started = time.perf_counter()
    env = {**os.environ, "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "disabled")}
    command = [sys.executable, __file__, "--drive", str(config_path), str(report)]
    launcher = subprocess.Popen(command, env=env)
    sampler.root = launcher.pid
    sampler.start()
    code = launcher.wait()
    wall = time.perf_counter() - started
    peaks = sampler.stop()
    if code != 0:
        print(f"scale: the run failed (exit {code}); see the output above", file=sys.stderr)
        return code
    launcher = json.loads(report.read_text())
    driver_peak = peaks.get("ray::DriverActor", 0)
    state = json.loads((run_dir / "state.json").read_text())
    rounds = []
    for r in state["rounds"]:
        row = {"iteration": r["iteration"], "labeled": r["n_labeled"].get("total")}
        row.update({f"seconds.{k}": round(v, 2) for k, v in r["seconds"].items()})
        if r.get("scoring_rows_per_s"):
            row["scoring.rows_per_s"] = round(r["scoring_rows_per_s"], 1)
        if r.get("confidence_table"):
            row["confidence_table.rows"] = pq.read_metadata(r["confidence_table"]).num_rows
        rounds.append(row)
    result = {
        "pool": args.pool,
        "protocol": {k: v for k, v in vars(args).items() if k not in ("drive", "output")},
        "resumed": resumed,
        "wall_s": round(wall, 1),
        "driver_peak_rss": driver_peak,
        "launcher_peak_rss": launcher["peak_rss"],
        "corpus_arrow_bytes": arrow_bytes,
        "ray_process_peak_rss": peaks,
        "state_json_bytes": (run_dir / "state.json").stat().st_size,
        "rounds": rounds,
        "goal_driver_below_2GB": 0 < driver_peak < GOAL_DRIVER_BYTES,
    }
    if args.compare_rows:
        first_model = state["rounds"][0]["checkpoint"]
        result["blocks"] = compare_blocks(first_model, args.compare_rows)
    atomic_write_text(Path(args.output), json.dumps(result, indent=1) + "\n")

    print(f"\npool of {args.pool:,} sentences, {len(rounds)} rounds, {wall:.0f}s wall")
    print(f"driver peak RSS      {_mib(driver_peak)}  (goal < 2 GiB: ", end="")
    print(f"{'met' if result['goal_driver_below_2GB'] else 'NOT met'})")
    print(f"launcher peak RSS    {_mib(launcher['peak_rss'])}")
    print(f"corpus in Arrow      {_mib(arrow_bytes)}  (the baseline the driver holds)")
    print(f"state.json           {result['state_json_bytes']:,} bytes")
    for name, peak in sorted(peaks.items(), key=lambda kv: -kv[1]):
        print(f"{name:<20} {_mib(peak)}")
    for row in rounds:
        print("round", json.dumps(row))
    if "blocks" in result:
        blocks = result["blocks"]
        print(
            f"scoring {blocks['rows']:,} sentences (EC, 1 actor): one block per batch "
            f"{blocks['baseline_block_per_batch']['rows_per_s']:.0f}/s, blocks of 4096 rows "
            f"{blocks['ours_block_rows_4096']['rows_per_s']:.0f}/s: {blocks['ratio']:.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
