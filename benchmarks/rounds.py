"""Where an AL round's time goes, on the full ATIS pool (4.4k sentences), and what is fixed.

Runs the real launcher (``python -m mtal_ray.launch``: Ray Train, Ray Data scoring,
MLflow tracking, oracle annotation) for three iterations on ``../shared/data/atis`` with
the validity study's ATIS protocol (MiniLM, 2 % initial set, epochs with early stopping on
dev, MT-AVG), then reads the breakdown the run itself records in ``state.json`` (and in
MLflow as ``seconds.*``) for its two scored rounds: per step, per training phase (``setup``,
``start``, ``model_load``, ``steps``, ``dev_eval``, ``checkpoint``, ``teardown``,
``export``, ``final_eval``; and ``imports``) and per scoring phase (``pool``, ``prepare``,
``first_block``, ``stream``, ``write``) plus the tracking time. The *fixed* part of a round
is what does not grow with the data: starting workers and actors, imports and model loads,
exports, writing tables, tracking. ``score.first_block`` holds the first block's own
scoring too; the fixed part counts it less that block's rows at the round's streaming rate.

Three arms, one after the other in the same run: ``scoring.compute: actors`` (the
baseline: a new actor per round, with its process start, imports and model load),
``tasks`` (the default on CPU: round 1 scores in the worker processes of round 0, imports
kept) and ``local`` (``tasks`` with ``training.num_workers: 0``: each round trains in the
driver's process, Ray Train's local mode, with no controller or worker process to start).
Round 0 is a cold start in all; round 1 is the steady state of every later round.

It also measures, in the same run, one fixed cost this project cut: the imports a scoring
actor pays before its first sentence, now and with the metric library (seqeval, which pulls
in scikit-learn) it used to import as well (the baseline), 3 times each in fresh processes.

    python benchmarks/rounds.py                # three arms, ~35 min on 2 cores
    python benchmarks/rounds.py --fresh        # start the runs over
    python benchmarks/rounds.py --fresh --arms tasks local \
        --output benchmarks/results/rounds_local.json

The run directories are ``runs/rounds/<arm>``; re-running continues an interrupted run.
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


ARMS = ("actors", "tasks", "local")
#: The rounds of a three-iteration run that score the pool (the last one only trains).
SCORED_ROUNDS = (0, 1)


def _config(run_dir: Path, tracking_uri: str, arm: str) -> dict[str, Any]:
    compute = "tasks" if arm == "local" else arm
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
            "num_workers": 0 if arm == "local" else 1,
            "cpus_per_worker": 1,
            "batch_size": 16,
            "epochs": 20,
            "eval_every_epochs": 2,
            "patience": 3,
            "min_steps": 100,
            "max_steps": 3000,
            "label_smoothing": {"sf": 0.1, "id": 0.1},
        },
        "scoring": {"concurrency": 1, "cpus_per_actor": 1, "compute": compute},
        "selection": {"method": "mt-avg"},
        "al": {"iterations": 3, "run_dir": str(run_dir)},
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


def fixed_part(seconds: dict[str, float], blocks: int) -> dict[str, float]:
    """The fixed phases of a round; ``score.first_block`` less its own block's scoring (one
    of the pool's ``blocks`` at the rate of the rest of the stream)."""
    fixed = {k: seconds[k] for k in FIXED if k in seconds}
    stream, first = seconds.get("score.stream", 0.0), seconds.get("score.first_block", 0.0)
    if "score.first_block" in fixed and stream > 0 and blocks > 1:
        per_block = stream / (blocks - 1)
        fixed["score.first_block"] = max(0.0, first - per_block)
    return fixed


def round_summary(seconds: dict[str, float], blocks: int) -> dict[str, Any]:
    total = sum(seconds.get(f"step.{s}", 0.0) for s in STEPS) + seconds.get("tracking", 0)
    fixed = fixed_part(seconds, blocks)
    return {
        "seconds": {k: round(v, 2) for k, v in sorted(seconds.items())},
        "total_s": round(total, 1),
        "fixed_s": {k: round(v, 2) for k, v in fixed.items()},
        "fixed_total_s": round(sum(fixed.values()), 1),
        "fixed_share": round(sum(fixed.values()) / total, 3),
    }


def run_arm(work: Path, arm: str, tracking_uri: str, fresh: bool) -> dict[str, Any]:
    """One launcher run of ``arm`` (:data:`ARMS`); its scored rounds' breakdowns."""
    import pyarrow.parquet as pq
    import yaml

    from mtal_ray.scoring.config import ScoringConfig
    from mtal_ray.scoring.pool import block_count

    run_dir = work / arm
    if fresh:
        shutil.rmtree(run_dir, ignore_errors=True)
    config_path = work / f"{arm}.yaml"
    config = _config(run_dir, tracking_uri, arm)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    started = time.perf_counter()
    env = {**os.environ, "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "disabled")}
    command = [sys.executable, "-m", "mtal_ray.launch", "--config", str(config_path)]
    code = subprocess.call(command, env=env, cwd=REPO)
    if code != 0:
        raise SystemExit(f"rounds: the {arm} run failed (exit {code}); see the output above")
    state = json.loads((run_dir / "state.json").read_text())
    rounds = []
    for iteration in SCORED_ROUNDS:
        record = state["rounds"][iteration]
        pool_rows = pq.ParquetFile(record["confidence_table"]).metadata.num_rows
        blocks = block_count(pool_rows, ScoringConfig(**config["scoring"]))
        rounds.append(round_summary(breakdown(state, iteration), blocks))
    return {"wall_s": round(time.perf_counter() - started, 1), "rounds": rounds}


def print_arm(arm: str, result: dict[str, Any]) -> None:
    for iteration, summary in zip(SCORED_ROUNDS, result["rounds"], strict=True):
        total, seconds = summary["total_s"], summary["seconds"]
        print(f"\n[{arm}] round {iteration} on the ATIS pool: {total:.1f}s")
        print(f"{'part':<22}{'seconds':>9}{'share':>8}  fixed")
        for key, value in seconds.items():
            if key.startswith("step.") or key in ("train", "score", "select"):
                continue
            part = summary["fixed_s"].get(key)
            shown = "" if part is None else f"{part:.1f}"
            print(f"{key:<22}{value:>9.1f}{value / total:>8.1%}  {shown}")
        share = summary["fixed_share"]
        verdict = "met" if share <= GOAL_FIXED_SHARE else "NOT met"
        print(
            f"fixed part: {summary['fixed_total_s']:.1f}s = {share:.1%} of the round "
            f"(goal <= 15%: {verdict})"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fresh", action="store_true", help="start the runs over")
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args(argv)
    if not ATIS.is_dir():
        print(f"rounds: {ATIS} not found (../shared/data beside the repository)", file=sys.stderr)
        return 2
    work = REPO / "runs" / "rounds"
    work.mkdir(parents=True, exist_ok=True)
    tracking_uri = f"sqlite:///{work / 'mlflow.db'}"

    actor_modules = ["mtal_ray.scoring.mc_dropout", "mtal_ray.scoring.model_adapter"]
    baseline_imports = import_seconds([*actor_modules, "seqeval.metrics"])
    ours_imports = import_seconds(actor_modules)

    arms = {arm: run_arm(work, arm, tracking_uri, args.fresh) for arm in args.arms}
    result: dict[str, Any] = {
        "protocol": {arm: _config(work / arm, tracking_uri, arm) for arm in args.arms},
        "arms": arms,
        "scorer_imports_s": {
            "ours": round(ours_imports, 2),
            "baseline": round(baseline_imports, 2),
        },
    }
    if {"actors", "tasks"} <= set(arms):
        pair = ("actors", "tasks")
        steady = {arm: arms[arm]["rounds"][1] for arm in pair}
        result["round_1"] = {
            "fixed_s": {arm: steady[arm]["fixed_total_s"] for arm in pair},
            "first_block_s": {arm: steady[arm]["seconds"]["score.first_block"] for arm in pair},
            "fixed_share": {arm: steady[arm]["fixed_share"] for arm in pair},
            "goal_fixed_share_met": steady["tasks"]["fixed_share"] <= GOAL_FIXED_SHARE,
        }
    if {"tasks", "local"} <= set(arms):  # training in the driver against a Train worker
        result["local_vs_tasks"] = {
            f"round_{iteration}": {
                arm: {
                    "fixed_s": arms[arm]["rounds"][i]["fixed_total_s"],
                    "fixed_share": arms[arm]["rounds"][i]["fixed_share"],
                    "total_s": arms[arm]["rounds"][i]["total_s"],
                }
                for arm in ("tasks", "local")
            }
            for i, iteration in enumerate(SCORED_ROUNDS)
        }
    atomic_write_text(Path(args.output), json.dumps(result, indent=1) + "\n")

    for arm, arm_result in arms.items():
        print_arm(arm, arm_result)
    if "round_1" in result:
        r1 = result["round_1"]
        a, t = r1["first_block_s"]["actors"], r1["first_block_s"]["tasks"]
        print(
            f"\nround 1 (steady state): score.first_block {t:.1f}s with tasks against "
            f"{a:.1f}s with actors ({a / max(t, 1e-9):.2f}x); fixed part "
            f"{r1['fixed_s']['tasks']:.1f}s against {r1['fixed_s']['actors']:.1f}s "
            f"({r1['fixed_share']['tasks']:.1%} against {r1['fixed_share']['actors']:.1%})"
        )
    for name, pair in result.get("local_vs_tasks", {}).items():
        t, lo = pair["tasks"], pair["local"]
        print(
            f"{name.replace('_', ' ')}: fixed part {lo['fixed_s']:.1f}s training in the driver "
            f"against {t['fixed_s']:.1f}s with a Train worker ({lo['fixed_share']:.1%} against "
            f"{t['fixed_share']:.1%}); round {lo['total_s']:.1f}s against {t['total_s']:.1f}s"
        )
    print(
        f"scorer imports: {ours_imports:.2f}s now, {baseline_imports:.2f}s with seqeval "
        f"(baseline): {baseline_imports / ours_imports:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
