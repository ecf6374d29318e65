"""Whole-process wall time of the commands people run most, against what they cost before.

Part 1, ``mtal-ray --help``: the command as it is (sub-commands import their heavy
dependencies only when they run), against the baseline of a process that imports what
building the parser used to import (torch, transformers, seqeval, Ray, MLflow and every
sub-command's module), and against a bare ``python -c pass`` (the floor).

Part 2, ``mtal-ray select`` on a 10^6-row confidence table (2 tasks, EC and DA), for every
greedy method: the whole process (read the Parquet table, select n = 20 000, write the JSON),
against the selection alone in this process (the floor, ``Selector.select`` on the loaded
table).

Every figure is the median of ``--repeats`` runs. The issue's goals: ``--help`` <= 0.5 s,
``select`` <= 2 s for every greedy method.

    python benchmarks/startup.py            # ~2 min on 2 cores
    python benchmarks/startup.py --rows 100000 --repeats 3

Output: ``benchmarks/results/startup.json`` and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mtal_ray.data.atomic import atomic_write_text

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "startup.json"
GREEDY = ["mt-r", "mt-avg", "mt-max", "mt-min", "mt-rrf", "mt-ind", "mt-par"]
GOAL_HELP_S = 0.5
GOAL_SELECT_S = 2.0
#: What ``mtal-ray --help`` imported before the sub-commands were lazy.
EAGER_IMPORTS = (
    "import torch, transformers, seqeval.metrics, ray, ray.train, ray.data, ray.tune, mlflow; "
    "import mtal_ray.cli.run, mtal_ray.cli.sweep, mtal_ray.cli.scoring, mtal_ray.cli.training, "
    "mtal_ray.training.trainer, mtal_ray.scoring.pool, mtal_ray.sweep.tuner"
)


def wall(command: list[str], repeats: int) -> float:
    """Median wall time of running ``command`` to the end (it must succeed)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def confidence_table(rows: int, path: Path) -> None:
    """A confidence table of ``rows`` sentences, tasks ``sf`` (tagging) and ``id``."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    base = rng.beta(5, 2, size=rows)
    table = pa.table(
        {
            "id": pa.array([f"s{i}" for i in range(rows)]),
            "n_tokens": pa.array(rng.integers(5, 40, size=rows).astype(np.int32)),
            "sf.ec": pa.array(np.clip(base + rng.normal(0, 0.05, rows), 0, 1)),
            "sf.da": pa.array(np.clip(base + rng.normal(0, 0.1, rows), 0, 1)),
            "sf.n_entities": pa.array(rng.integers(0, 6, size=rows).astype(np.int32)),
            "id.ec": pa.array(np.clip(base + rng.normal(0, 0.1, rows), 0, 1)),
            "id.da": pa.array(np.clip(base + rng.normal(0, 0.1, rows), 0, 1)),
        }
    )
    pq.write_table(table, path)


def in_process_select(path: Path, method: str, n: int, repeats: int) -> float:
    from mtal_ray.selection import load_table, make_selector

    table = load_table(path)
    times = []
    for _ in range(repeats):
        selector = make_selector(method, seed=0)
        started = time.perf_counter()
        selector.select(table, n=n)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="confidence-table rows")
    parser.add_argument("--n", type=int, default=20_000, help="sentences to select")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args(argv)
    cli = shutil.which("mtal-ray")
    if cli is None:
        print("startup: `mtal-ray` is not on PATH (pip install -e . first)", file=sys.stderr)
        return 2
    result: dict = {"rows": args.rows, "n": args.n, "repeats": args.repeats}
    floor = wall([sys.executable, "-c", "pass"], args.repeats)
    ours = wall([cli, "--help"], args.repeats)
    eager = wall([sys.executable, "-c", EAGER_IMPORTS], args.repeats)
    result["help"] = {"ours_s": ours, "baseline_eager_imports_s": eager, "python_floor_s": floor}
    print(f"mtal-ray --help       {ours:6.2f}s   (goal <= {GOAL_HELP_S}s: ", end="")
    print(f"{'met' if ours <= GOAL_HELP_S else 'NOT met'})")
    print(f"  baseline: the old eager imports {eager:6.2f}s ({eager / ours:.1f}x); ", end="")
    print(f"bare python {floor:.2f}s")

    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "conf.parquet"
        confidence_table(args.rows, table)
        result["select"] = {}
        print(
            f"\nmtal-ray select on {args.rows:,} rows, n = {args.n:,} (whole process vs in process)"
        )
        for method in GREEDY:
            command = [cli, "select", "--input", str(table), "--method", method]
            command += ["--n", str(args.n), "--output", str(Path(tmp) / f"{method}.json")]
            whole = wall(command, args.repeats)
            inner = in_process_select(table, method, args.n, args.repeats)
            result["select"][method] = {"whole_process_s": whole, "selection_only_s": inner}
            verdict = "met" if whole <= GOAL_SELECT_S else "NOT met"
            print(f"  {method:<8} {whole:6.2f}s  (selection alone {inner:5.2f}s; goal: {verdict})")
    result["goals"] = {
        "help_le_0.5s": ours <= GOAL_HELP_S,
        "select_le_2s_every_greedy": all(
            r["whole_process_s"] <= GOAL_SELECT_S for r in result["select"].values()
        ),
    }
    atomic_write_text(Path(args.output), json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
