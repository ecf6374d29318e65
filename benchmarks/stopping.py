"""What per-task stopping buys and what it costs, on the real scenarios.

For each scenario (``atis``: SF + ID, ``conll04``: NER + RE, ``ewt``: DP + NER from
``../shared/data``) this script runs one sweep (Ray Tune + MLflow, resumable: re-running
continues where it stopped) of the same selector with and without ``al.stopping`` and the
same seeds, so that each run with stopping has a twin without it (same initial set, same
first model). It reports, per scenario and seed, the annotation cost spent (the paper's cost
model, §7) and each task's final test score, and per scenario the cost saved, where each task
stopped, and whether the issue's goal holds: ≥ 25 % of the cost saved while every task's
final test score stays within 1 point of the run without stopping.

The training protocol (epochs with early stopping on dev, pool, rounds) is the validity
study's (``benchmarks/validity.py``); the criterion and its settings are options (choose
them on dev: the default, a plateau of the dev score, reads dev only).

    python benchmarks/stopping.py --quick                 # a tiny end-to-end smoke run
    python benchmarks/stopping.py --scenarios atis --seeds 0 1 2 --rounds 8
    python benchmarks/stopping.py --criterion stabilizing-predictions --threshold 0.97
    python benchmarks/stopping.py --read-off benchmarks/results/trials/validity/validity_conll04

``--read-off`` runs nothing: it applies ``dev-plateau`` (every ``--deltas`` × ``--windows``)
with the library's own ``decide`` to finished runs *without* stopping (a sweep's trials or
an archive of them, e.g. the validity study's). A run with stopping makes exactly the
selections of its twin without stopping until a task's rule fires (same seed, same initial
set, same models), so where no rule fires before the last selection, the run with stopping
*is* its twin: 0 % of the cost saved and the same test scores, exactly. Where a rule fires
earlier, only a real run (this script without ``--read-off``) measures the cost and scores.

Output: ``benchmarks/results/stopping.json`` (scenario → protocol, per-seed runs, the
report's stopping rows) and a table on stdout; each sweep's ``report.md`` holds the
"Per-task stopping" section.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from validity import (
    REPO,
    Scenario,
    add_protocol_args,
    base_config,
    keep_previous_scenarios,
    print_plan,
    quick_protocol,
    scenario_sweeps,
    write_results,
)

from mtal_ray.data.atomic import atomic_write_text

RESULTS = REPO / "benchmarks" / "results" / "stopping.json"
#: The issue's goal: at least this share of the cost saved ...
GOAL_SAVED = 0.25
#: ... while every task's final test score stays within this (absolute, scores in [0, 1]).
GOAL_SCORE = 0.01


def stopping_rule(args: argparse.Namespace) -> dict[str, Any]:
    """The ``al.stopping`` entry of the runs with stopping."""
    from mtal_ray.config import StoppingConfig

    reads = StoppingConfig.READS.get(args.criterion, frozenset())  # unknown: the config says
    rule: dict[str, Any] = {"criterion": args.criterion, "per_task": True}
    if args.threshold is not None:
        rule["threshold"] = args.threshold
    if args.window is not None and "window" in reads:
        rule["window"] = args.window
    if args.stop_set is not None and "stop_set" in reads:
        rule["stop_set"] = args.stop_set
    return rule


def runs_of(sweep_dir: Path, tasks: list[str]) -> dict[str, dict[str, Any]]:
    """seed → {"without"|"with": cost, labeled, final test scores, where tasks stopped}."""
    from mtal_ray.sweep.results import load_trials

    out: dict[str, dict[str, Any]] = {}
    for trial in load_trials(sweep_dir):
        if trial.record.status != "finished" or not trial.rows:
            continue
        arm = "with" if trial.stopping else "without"
        out.setdefault(str(trial.record.seed), {})[arm] = {
            "trial": trial.record.name,
            "iterations": len(trial.rows),
            "labeled": trial.sizes[-1],
            "cost": trial.cost,
            "test": {t: v for t, v in trial.final_scores("test").items() if t in tasks},
            "stopped_at": {t: e.get("stopped_at") for t, e in trial.stopping.items()},
            "task_cost": {t: e.get("cost") for t, e in trial.stopping.items()},
        }
    return out


def verdict(runs: dict[str, dict[str, Any]], tasks: list[str]) -> dict[str, Any]:
    """Mean cost saved and per-task score change over the seeds that have both arms."""
    paired = [r for r in runs.values() if "with" in r and "without" in r]
    if not paired:
        return {"seeds": 0}
    saved = [
        1.0 - r["with"]["cost"] / r["without"]["cost"]
        for r in paired
        if r["with"]["cost"] is not None and r["without"]["cost"]
    ]
    change = {}
    for task in tasks:
        diffs = [
            r["with"]["test"][task] - r["without"]["test"][task]
            for r in paired
            if task in r["with"]["test"] and task in r["without"]["test"]
        ]
        change[task] = sum(diffs) / len(diffs) if diffs else None
    mean_saved = sum(saved) / len(saved) if saved else None
    met = (
        mean_saved is not None
        and mean_saved >= GOAL_SAVED
        and all(c is not None and c >= -GOAL_SCORE for c in change.values())
    )
    return {"seeds": len(paired), "saved": mean_saved, "score_change": change, "goal_met": met}


def print_table(name: str, runs: dict[str, dict[str, Any]], tasks: list[str], v: dict) -> None:
    print(f"\n=== {name}: with and without per-task stopping (test scores ×100)")
    head = ["seed", "arm", "iters", "labeled", "cost", *tasks, "stopped at"]
    print(" | ".join(head))
    for seed in sorted(runs, key=int):
        for arm in ("without", "with"):
            run = runs[seed].get(arm)
            if run is None:
                continue
            scores = [f"{run['test'].get(t, float('nan')) * 100:.2f}" for t in tasks]
            stops = ", ".join(f"{t}@{s}" for t, s in run["stopped_at"].items() if s is not None)
            cost = "–" if run["cost"] is None else f"{run['cost']:.0f}"
            row = [seed, arm, str(run["iterations"]), str(run["labeled"]), cost, *scores]
            print(" | ".join([*row, stops or "–"]))
    if v.get("seeds"):
        saved = "–" if v["saved"] is None else f"{v['saved'] * 100:.1f} %"
        change = ", ".join(
            f"{t} {c * 100:+.2f}" if c is not None else f"{t} –"
            for t, c in v["score_change"].items()
        )
        goal = "met" if v["goal_met"] else "not met"
        print(f"saved {saved} of the cost; score change {change}; goal: {goal}")
    else:
        print("no seed has both runs finished yet")


# --------------------------------------------------------------------------- read-off


def fire_iteration(rows: list[dict[str, Any]], task: str, delta: float, window: int) -> int | None:
    """The iteration at which ``dev-plateau`` (δ, window) would stop ``task`` in a run whose
    summary rows (one per iteration, with ``dev.<task>``) are ``rows``; None when it would
    not fire before the last selection (the last row trains but selects nothing)."""
    from mtal_ray.stopping import TaskRound, decide, make_criterion

    criterion = make_criterion("dev-plateau", delta, window)
    history: list[TaskRound] = []
    for row in rows[:-1]:  # the loop judges after each round that is followed by a selection
        history.append(TaskRound(iteration=int(row["iteration"]), dev=row.get(f"dev.{task}")))
        if decide([criterion], history).stop:
            return int(row["iteration"])
    return None


def finished_runs(folder: Path) -> list[Any]:
    """Finished trials (:class:`mtal_ray.sweep.results.TrialResult`) of a sweep
    (``folder/trials/*``) or of a trial archive (``folder/*``); trials with stopping are
    left out."""
    from mtal_ray.sweep.results import load_trial

    trials = folder / "trials" if (folder / "trials").is_dir() else folder
    loaded = [load_trial(child) for child in sorted(trials.iterdir()) if child.is_dir()]
    return [
        t for t in loaded if t is not None and t.record.status == "finished" and t.rows
        and not t.stopping
    ]  # fmt: skip


def read_off(folder: Path, deltas: list[float], windows: list[int]) -> dict[str, Any]:
    """Per trial and rule (δ, window): where each task would stop, and the verdict."""
    out: dict[str, Any] = {}
    for run in finished_runs(folder):
        tasks, rows = run.record.tasks, run.rows
        rules = {}
        for window in windows:
            for delta in deltas:
                fires = {t: fire_iteration(rows, t, delta, window) for t in tasks}
                rules[f"delta={delta:g},window={window}"] = fires
        out[run.record.name] = {
            "seed": run.record.seed,
            "method": run.record.method,
            "iterations": len(rows),
            "dev": {t: [r.get(f"dev.{t}") for r in rows] for t in tasks},
            "fires": rules,
        }
    return out


def print_read_off(folder: Path, result: dict[str, Any]) -> None:
    """A markdown table: one row per trial, one column per rule (δ, window)."""
    rules = list(next(iter(result.values()))["fires"])
    print(f"\n=== read-off of {folder}: the iteration at which dev-plateau stops each task")
    print("(– = no task before the last selection: the run with stopping is its twin)\n")
    print("| trial | iterations | " + " | ".join(rules) + " |")
    print("|---|---:|" + "---|" * len(rules))
    for trial, entry in result.items():
        cells = [
            ", ".join(f"{t}@{i}" for t, i in entry["fires"][rule].items() if i is not None) or "–"
            for rule in rules
        ]
        print(f"| {trial} | {entry['iterations']} | " + " | ".join(cells) + " |")
    quiet = [
        sum(all(i is None for i in e["fires"][rule].values()) for e in result.values())
        for rule in rules
    ]
    counts = " | ".join(f"{q} of {len(result)}" for q in quiet)
    print(f"| runs with no stop (0 % saved, same scores) | | {counts} |")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_protocol_args(parser, rounds=8)
    parser.add_argument("--method", default="mt-avg", help="the selector of both arms")
    parser.add_argument("--criterion", default="dev-plateau")
    parser.add_argument(
        "--threshold", type=float, default=0.005, help="dev gain δ, κ or uncertainty"
    )
    parser.add_argument("--window", type=int, default=2, help="rounds in a row")
    parser.add_argument("--stop-set", type=int, default=None, help="κ's unlabeled sentences")
    parser.add_argument(
        "--read-off", nargs="+", type=Path, default=None, metavar="DIR",
        help="run nothing: read where dev-plateau would stop each task off finished runs "
        "without stopping (sweep folders or trial archives)",
    )  # fmt: skip
    parser.add_argument("--deltas", nargs="+", type=float, default=[0.005, 0.01, 0.02])
    parser.add_argument("--windows", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--work-dir", default="runs/stopping")
    parser.add_argument("--output", default=str(RESULTS))
    parser.add_argument(
        "--quick", action="store_true",
        help="smoke run: ATIS, 1 seed, 80-sentence pool, 3 rounds, a few steps, a budget "
        "criterion that surely fires (numbers are meaningless)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.quick:
        quick_protocol(args, rounds=3, results=RESULTS)
        args.criterion, args.threshold, args.window = "budget", 1.0, None
    return args


def main(argv: list[str] | None = None) -> int:
    from mtal_ray.sweep.report import stopping_rows
    from mtal_ray.sweep.results import load_trials

    args = parse_args(argv)
    if args.read_off is not None:
        return main_read_off(args)
    work = Path(args.work_dir).absolute()
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rule = stopping_rule(args)
    output: dict[str, Any] = {
        "protocol": {
            "method": args.method,
            "stopping": rule,
            "rounds": args.rounds,
            "seeds": args.seeds,
            "pool_size": args.pool_size,
            "epochs": args.epochs,
            "patience": args.patience,
            "goal": {"saved": GOAL_SAVED, "score_within": GOAL_SCORE},
        },
        "scenarios": {},
        "wall_s": {},
    }
    failures: list[str] = []

    def config_for(sweep_name: str, scenario: Scenario, corpus: Path) -> dict:
        arms = {"selection.method": [args.method], "al.stopping": [[], [rule]], "seed": args.seeds}
        return base_config(sweep_name, scenario, corpus, args, [arms])

    if args.plan:
        print_plan(args, work, "stopping", config_for)
        return 0

    for run in scenario_sweeps(args, work, "stopping", config_for, failures):
        runs = runs_of(run.sweep_dir, run.scenario.tasks)
        v = verdict(runs, run.scenario.tasks)
        output["scenarios"][run.name] = {
            "pool_size": run.pool_size,
            "runs": runs,
            "verdict": v,
            "report_rows": stopping_rows(load_trials(run.sweep_dir)),
        }
        output["wall_s"][run.name] = round(time.perf_counter() - run.started, 1)
        print_table(run.name, runs, run.scenario.tasks, v)
    keep_previous_scenarios(output, Path(args.output), keep=("read_off",))
    write_results(output, args.output, started)
    return 1 if failures else 0


def main_read_off(args: argparse.Namespace) -> int:
    """``--read-off``: the rules' verdicts on finished runs, merged into the results file."""
    missing = [str(f) for f in args.read_off if not f.is_dir()]
    if missing:
        print(f"error: --read-off: no such folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    path = Path(args.output)
    output = json.loads(path.read_text()) if path.exists() else {}
    section = output.setdefault("read_off", {})
    for folder in args.read_off:
        result = read_off(folder, args.deltas, args.windows)
        if not result:
            print(f"error: --read-off: {folder} holds no finished run without stopping")
            return 2
        print_read_off(folder, result)
        section[folder.name] = result
    atomic_write_text(path, json.dumps(output, indent=1) + "\n")
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
