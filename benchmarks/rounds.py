"""Where one AL round's time goes, on the full ATIS pool (4.4k sentences), and what is fixed.

Runs the real launcher (``python -m mtal_ray.launch``: Ray Train, Ray Data scoring actors,
MLflow tracking, oracle annotation) for two iterations on ``../shared/data/atis`` with the
validity study's ATIS protocol (MiniLM, 2 % initial set, epochs with early stopping on dev,
MT-AVG), then reads the breakdown the run itself records in ``state.json`` (and in MLflow as
``seconds.*``): per step, per training phase (``setup``, ``start``, ``model_load``,
``steps``, ``dev_eval``, ``checkpoint``, ``teardown``, ``export``, ``final_eval``; and ``imports``)
and per
scoring phase (``pool``, ``prepare``, ``first_block``, ``stream``, ``write``) plus the
tracking time. The *fixed* part of a round is what does not grow with the data: starting
workers and actors, imports and model loads, exports, writing tables, tracking.

It also measures, in the same run, one fixed cost this project cut: the imports a scoring
actor pays before its first sentence, now and with the metric library (seqeval, which pulls
in scikit-learn) it used to import as well (the baseline), 3 times each in fresh processes.

    python benchmarks/rounds.py                # ~5 min on 2 cores
    python benchmarks/rounds.py --fresh        # start the run over

The run directory is ``runs/rounds/atis``; re-running continues an interrupted run.
Output: ``benchmarks/results/rounds.json`` and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mtal_ray.data.atomic import atomic_write_text

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "rounds.json"
ATIS = REPO.parent / "shared" / "data" / "atis"
#: The issue's goal: the fixed part of a round at most this share of it.
GOAL_FIXED_SHARE = 0.15
FIXED = (
    "train.setup",
    "train.start",
    "train.imports",
    "train.model_load",
    "train.teardown",
    "train.export",
    "score.pool",
    "score.prepare",
    "score.first_block",
    "score.write",
    "tracking",
)
STEPS = ("train", "score", "select", "annotate", "update")


def _config(run_dir: Path, tracking_uri: str) -> dict[str, Any]:
    return {
        "seed": 0,
        "data": {
            "path": str(ATIS),
            "tasks": ["sf", "id"],
            "initial_fraction": 0.02,
            "dev_multiple": 2.0,
        },
        "model": {"sharing": "smt"},
        "training": {
            "num_workers": 1,
            "cpus_per_worker": 1,
            "batch_size": 16,
            "epochs": 20,
            "eval_every_epochs": 2,
            "patience": 3,
            "min_steps": 100,
            "max_steps": 3000,
            "label_smoothing": {"sf": 0.1, "id": 0.1},
        },
        "scoring": {"concurrency": 1, "cpus_per_actor": 1},
        "selection": {"method": "mt-avg"},
        "al": {"iterations": 2, "run_dir": str(run_dir)},
        "tracking": {"experiment": "rounds_atis", "tracking_uri": tracking_uri},
    }


def import_seconds(modules: list[str], repeats: int = 3) -> float:
    """Median wall time of importing ``modules`` in a fresh interpreter."""
    code = "import time; t = time.perf_counter(); " + "; ".join(f"import {m}" for m in modules)
    code += "; print(time.perf_counter() - t)"
    times = []
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


def breakdown(state: dict[str, Any], iteration: int) -> dict[str, float]:
    """The round's ``seconds`` record: every step, phase and the tracking time."""
    return {k: float(v) for k, v in state["rounds"][iteration]["seconds"].items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fresh", action="store_true", help="start the run over")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args(argv)
    if not ATIS.is_dir():
        print(f"rounds: {ATIS} not found (../shared/data beside the repository)", file=sys.stderr)
        return 2
    import yaml

    work = REPO / "runs" / "rounds"
    run_dir = work / "atis"
    if args.fresh:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    config_path = work / "atis.yaml"
    tracking_uri = f"sqlite:///{work / 'mlflow.db'}"
    config_path.write_text(yaml.safe_dump(_config(run_dir, tracking_uri), sort_keys=False))

    actor_modules = ["mtal_ray.scoring.mc_dropout", "mtal_ray.scoring.model_adapter"]
    baseline_imports = import_seconds([*actor_modules, "seqeval.metrics"])
    ours_imports = import_seconds(actor_modules)

    started = time.perf_counter()
    env = {**os.environ, "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "disabled")}
    command = [sys.executable, "-m", "mtal_ray.launch", "--config", str(config_path)]
    code = subprocess.call(command, env=env, cwd=REPO)
    wall = time.perf_counter() - started
    if code != 0:
        print(f"rounds: the run failed (exit {code}); see the output above", file=sys.stderr)
        return code
    state = json.loads((run_dir / "state.json").read_text())
    seconds = breakdown(state, 0)
    round_total = sum(seconds.get(f"step.{s}", 0.0) for s in STEPS) + seconds.get("tracking", 0)
    fixed = {k: seconds[k] for k in FIXED if k in seconds}
    share = sum(fixed.values()) / round_total
    result = {
        "protocol": _config(run_dir, tracking_uri),
        "pool": state["rounds"][0].get("n_labeled", {}),
        "wall_s": round(wall, 1),
        "round_0_seconds": {k: round(v, 2) for k, v in sorted(seconds.items())},
        "round_0_total_s": round(round_total, 1),
        "fixed_s": {k: round(v, 2) for k, v in fixed.items()},
        "fixed_share": round(share, 3),
        "goal_fixed_share_met": share <= GOAL_FIXED_SHARE,
        "actor_imports_s": {"ours": round(ours_imports, 2), "baseline": round(baseline_imports, 2)},
    }
    atomic_write_text(Path(args.output), json.dumps(result, indent=1) + "\n")

    print(f"\nround 0 on the ATIS pool: {round_total:.1f}s (run wall {wall:.0f}s)")
    print(f"{'part':<22}{'seconds':>9}{'share':>8}  fixed?")
    for key, value in sorted(seconds.items(), key=lambda kv: kv[0]):
        if key.startswith("step.") or key in ("train", "score", "select"):
            continue
        print(
            f"{key:<22}{value:>9.1f}{value / round_total:>8.1%}  {'fixed' if key in FIXED else ''}"
        )
    for step in STEPS:
        if f"step.{step}" in seconds:
            value = seconds[f"step.{step}"]
            print(f"{'step ' + step:<22}{value:>9.1f}{value / round_total:>8.1%}")
    verdict = "met" if share <= GOAL_FIXED_SHARE else "NOT met"
    total_fixed = sum(fixed.values())
    print(f"fixed part: {total_fixed:.1f}s = {share:.1%} of the round (goal <= 15%: {verdict})")
    print(
        f"scoring actor imports: {ours_imports:.2f}s now, {baseline_imports:.2f}s with seqeval "
        f"(baseline): {baseline_imports / ours_imports:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
