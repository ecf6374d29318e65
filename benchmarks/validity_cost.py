"""The validity study at equal annotation cost: do the selections beat random per unit of
annotation work, not only per sentence?

``validity.py`` compares methods at equal *sentence* counts (the paper's Table 10 shape).
But selections differ in what a sentence costs: on ATIS the first MT-AL selection picks
sentences of ~5 words with ~1 slot where the pool averages 11 words and 3.4 slots. This
script prices every round's selection of every finished trial with the paper's cost model
(§7: a sentence costs its m words once, plus ``tp`` = 1 per entity of a token-level task and
``ts`` = 3 for a sentence-level task) on the **gold** labels the oracle gave — the work an
annotator actually did, the same yardstick for random selection (which runs no model, so
has no predicted entity counts) and for the MT methods — and compares each method with
MT-R (same seed) at equal cumulative cost: MT-R's test geometric mean is interpolated
linearly at the method's cost (never extrapolated). The initial labeled set is the same
for every method of a seed and is left out of the cost.

Reads the trial archive that ``validity.py`` keeps (``benchmarks/results/trials/validity/
validity_<scenario>``; every round's ``selection.json`` is needed) or a sweep's ``trials``
folder, and the pool the trials selected from (``validity.py``'s fixed subset of the
corpus in ``../shared/data``, rebuilt when missing). Writes ``benchmarks/results/
validity_cost_<scenario>.json`` and prints the tables.

    python benchmarks/validity_cost.py --scenario atis
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import validity  # benchmarks/validity.py: scenarios, corpus reading, archive layout

from mtal_ray.data.atomic import atomic_write_text
from mtal_ray.driver.annotation import label_cost_table
from mtal_ray.selection import annotation_cost
from mtal_ray.selection.cost import CostModel
from mtal_ray.sweep.cost_reference import final_at_common_cost, paired_at_cost
from mtal_ray.sweep.reference import gain_text, paired_gain
from mtal_ray.sweep.series import Gain

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "benchmarks" / "results"


def trial_curve(trial_dir: Path, costs: Any, tasks: list[str]) -> dict[str, Any] | None:
    """A finished trial's cumulative gold cost before each iteration's training and its
    test scores there; None when a round's selection is missing. A round whose summary row
    holds ``cost_annotated`` (runs record it since 2026-12-04: the same function on the
    same gold labels) needs no ``selection.json``."""
    summary = json.loads((trial_dir / "summary.json").read_text(encoding="utf-8"))
    rows = summary["rows"]
    spent, total = [], 0.0
    for row in rows:
        spent.append(total)
        if row is rows[-1]:
            break
        if row.get("cost_annotated") is not None:  # priced by the run itself, on gold labels
            total += float(row["cost_annotated"])
            continue
        path = trial_dir / "rounds" / f"round_{row['iteration']}" / "selection.json"
        if not path.is_file():
            return None
        selection = json.loads(path.read_text(encoding="utf-8"))
        per_id = selection.get("tasks") or {sid: tasks for sid in selection["ids"]}
        total += annotation_cost(costs, {s: list(t) for s, t in per_id.items()}, CostModel())
    scores = {t: [float(r[f"test.{t}"]) for r in rows] for t in tasks}
    gmean = [
        float(np.prod([scores[t][i] for t in tasks]) ** (1 / len(tasks))) for i in range(len(rows))
    ]
    return {"labeled": [r["labeled"] for r in rows], "cost": spent, "test": scores, "gmean": gmean}


def paired(curve: dict[str, Any], random: dict[str, Any]) -> dict[str, Any]:
    """``curve`` against MT-R's (same seed) at equal cost and at equal sentence counts
    (the report's own arithmetic: :func:`mtal_ray.sweep.cost_reference.paired_at_cost`)."""
    cost, gmean = np.array(curve["cost"]), np.array(curve["gmean"])
    rcost, rgmean = np.array(random["cost"]), np.array(random["gmean"])
    inside = (cost >= rcost[0]) & (cost <= rcost[-1])
    at_cost = np.where(inside, gmean - np.interp(cost, rcost, rgmean), np.nan)
    _, area, ratio = paired_at_cost(
        (curve["cost"], curve["gmean"]), (random["cost"], random["gmean"])
    )
    final_common = final_at_common_cost(
        (curve["cost"], curve["gmean"]), (random["cost"], random["gmean"])
    )
    return {
        "delta_final_common_cost": round(100 * final_common, 2),
        "delta_auc_same_cost": round(100 * area, 2),
        "delta_same_sentences": (100 * (gmean - rgmean)).round(2).tolist(),
        "delta_same_cost": [None if np.isnan(d) else round(100 * d, 2) for d in at_cost],
        "cost_ratio_final": round(ratio, 3),
    }


def curve_key(record: dict[str, Any]) -> str | None:
    """The name a finished trial's curve goes under: its method for the selector comparison,
    ``<method>@<budget>`` for the budget arm (GRD_AL/BLP_AL at a per-round budget),
    ``<method>-total`` for the length arm (``selection.uncertainty``),
    ``<method>-total@<budget>`` for the budget pair with the total; None
    for trials that differ in more (the CE and ST arms) or did not finish."""
    if record.get("status") != "finished":
        return None
    params = set(record["params"])
    if params == {"selection.method", "seed"}:
        return str(record["method"])
    if params == {"selection.method", "selection.budget", "seed"}:
        return f"{record['method']}@{float(record['params']['selection.budget']):g}"
    if params == {"selection.method", "selection.uncertainty", "seed"}:  # the length arm
        return f"{record['method']}-{record['params']['selection.uncertainty']}"
    if params == {"selection.method", "selection.budget", "selection.uncertainty", "seed"}:
        budget = float(record["params"]["selection.budget"])
        return f"{record['method']}-{record['params']['selection.uncertainty']}@{budget:g}"
    return None


def compare_budget_pairs(curves: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """BLP_AL against GRD_AL (same seed, same per-round budget): sentences bought, gold
    cost spent, and the test geometric mean at the final iteration and at BLP's final gold
    cost, or GRD's when BLP spent more (the last cost both reach: the other interpolated,
    never extrapolated), ×100, with the bootstrap over seeds."""
    out: dict[str, Any] = {}
    for grd_key in sorted(k for k in curves if "@" in k):
        grd, budget = grd_key.split("@")
        grd, total, _ = grd.partition("-total")
        blp = dict(validity.GRD_BLP).get(grd)
        blp_key = f"{blp}{total}@{budget}"
        if blp is None or blp_key not in curves:
            continue
        seeds = sorted(set(curves[grd_key]) & set(curves[blp_key]))
        rows = []
        for seed in seeds:
            g, b = curves[grd_key][seed], curves[blp_key][seed]
            _, area, ratio = paired_at_cost((b["cost"], b["gmean"]), (g["cost"], g["gmean"]))
            at_cost = final_at_common_cost((b["cost"], b["gmean"]), (g["cost"], g["gmean"]))
            rows.append(
                {
                    "seed": seed,
                    "labeled": [g["labeled"][-1], b["labeled"][-1]],
                    "gold_cost": [g["cost"][-1], b["cost"][-1]],
                    "final": [round(100 * g["gmean"][-1], 2), round(100 * b["gmean"][-1], 2)],
                    "delta_final": round(100 * (b["gmean"][-1] - g["gmean"][-1]), 2),
                    "delta_same_cost": round(100 * at_cost, 2),
                    "delta_auc_same_cost": round(100 * area, 2),
                    "cost_ratio": round(ratio, 3),
                }
            )
        if not rows:
            continue
        gains = {
            k: dataclasses.asdict(paired_gain(values))
            for k in ("delta_final", "delta_same_cost", "delta_auc_same_cost")
            if (values := [r[k] for r in rows if r[k] is not None])
        }
        out[f"{blp_key} vs {grd_key}"] = {"seeds": rows, "summary": gains}
        print(f"\n=== {blp_key} (BLP_AL) − {grd_key} (GRD_AL), paired by seed, geo-mean ×100")
        for r in rows:
            print(
                f"seed {r['seed']}: labeled {r['labeled'][0]} / {r['labeled'][1]}, gold cost "
                f"{r['gold_cost'][0]:.0f} / {r['gold_cost'][1]:.0f}, final {r['final'][0]:.2f} / "
                f"{r['final'][1]:.2f} (Δ {r['delta_final']:+.2f}; at equal cost "
                f"{r['delta_same_cost']:+.2f}"
                f"; Δ AUC over cost {r['delta_auc_same_cost']:+.2f})"
            )
        print("; ".join(f"{k} {gain_text(Gain(**g), 1)}" for k, g in gains.items()))
    return out


def recorded_pool_size(results: dict[str, Any], scenario: str) -> int | None:
    """The pool size ``validity.json`` records for ``scenario`` (its own entry; the
    file-wide protocol is that of the last scenario collected)."""
    entry = results.get("scenarios", {}).get(scenario, {})
    if "pool_size" in entry:
        return entry["pool_size"]
    return results.get("protocol", {}).get("pool_size")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=sorted(validity.SCENARIOS), default="atis")
    parser.add_argument("--trials", help="trial folders (default: the validity archive)")
    parser.add_argument(
        "--pool-size", type=int, help="the study's (default: the scenario's in validity.json)"
    )
    parser.add_argument("--work-dir", default="runs/validity", help="where the pool is built")
    parser.add_argument(
        "--output", help="default: benchmarks/results/validity_cost_<scenario>.json"
    )
    args = parser.parse_args(argv)
    output = Path(args.output or RESULTS_DIR / f"validity_cost_{args.scenario}.json")
    scenario = validity.SCENARIOS[args.scenario]
    trials = Path(
        args.trials or REPO / "benchmarks/results/trials/validity" / f"validity_{args.scenario}"
    )
    if not trials.is_dir():
        print(f"error: no trials in {trials}", file=sys.stderr)
        return 2
    size = args.pool_size
    if size is None and validity.RESULTS.is_file():  # the pool the trials selected from
        size = recorded_pool_size(
            json.loads(validity.RESULTS.read_text(encoding="utf-8")), args.scenario
        )
    corpus = validity.pool_corpus(scenario, size or scenario.pool_size, Path(args.work_dir))
    pool = validity.pool_table(corpus, scenario)
    costs = label_cost_table(pool.to_pylist(), scenario.tasks)  # the gold labels

    curves: dict[str, dict[str, Any]] = {}
    for trial_dir in sorted(p for p in trials.iterdir() if (p / "summary.json").is_file()):
        record = json.loads((trial_dir / "trial.json").read_text(encoding="utf-8"))
        key = curve_key(record)
        if key is None:
            continue  # the selector comparison and the budget arm (CE and ST arms differ)
        curve = trial_curve(trial_dir, costs, scenario.tasks)
        if curve is None:
            print(f"skipped {trial_dir.name}: a round's selection.json is missing")
            continue
        curves.setdefault(key, {})[str(record["seed"])] = curve

    random = curves.get("mt-r", {})
    results: dict[str, Any] = {
        "scenario": args.scenario,
        "cost_model": "paper §7 (tp 1, ts 3) on gold labels",
        "methods": {},
    }
    print(f"\n=== {args.scenario}: cumulative gold annotation cost before each training")
    for method, seeds in sorted(curves.items()):
        for seed, curve in sorted(seeds.items()):
            line = " ".join(f"{c:6.0f}" for c in curve["cost"])
            print(f"{method:8s} seed {seed}: {line}   geo-mean {100 * curve['gmean'][-1]:.2f}")
    print(f"\n=== {args.scenario}: paired with MT-R (same seed), test geo-mean ×100")
    print(
        "method   seed  Δ same sentences per iteration      "
        "Δ same cost per iteration         cost ratio"
    )
    for method, seeds in sorted(curves.items()):
        out = results["methods"].setdefault(method, {})
        for seed, curve in sorted(seeds.items()):
            entry = {**curve}
            if method != "mt-r" and seed in random:
                entry["vs_random"] = paired(curve, random[seed])
                d = entry["vs_random"]
                same_cost = ["  –  " if x is None else f"{x:+5.2f}" for x in d["delta_same_cost"]]
                print(
                    f"{method:8s} {seed:>4}  "
                    + " ".join(f"{x:+5.2f}" for x in d["delta_same_sentences"])
                    + "   "
                    + " ".join(same_cost)
                    + f"   {d['cost_ratio_final']:.3f}"
                )
            out[seed] = entry
    print(
        f"\n=== {args.scenario}: over seeds (mean [95 % bootstrap CI] wins/losses), ×100; "
        "final_same_cost: at the smaller of the two final costs, the other curve interpolated"
    )
    for method, entries in sorted(results["methods"].items()):
        paired_entries = [e["vs_random"] for e in entries.values() if "vs_random" in e]
        if not paired_entries:
            continue
        summary = {
            "final_same_cost": paired_gain([e["delta_final_common_cost"] for e in paired_entries]),
            "auc_same_cost": paired_gain([e["delta_auc_same_cost"] for e in paired_entries]),
            "final_same_sentences": paired_gain(
                [e["delta_same_sentences"][-1] for e in paired_entries]
            ),
        }
        ratio = float(np.mean([e["cost_ratio_final"] for e in paired_entries]))
        results.setdefault("summary", {})[method] = {
            **{k: dataclasses.asdict(g) for k, g in summary.items()},
            "cost_ratio_final": round(ratio, 3),
        }
        text = "; ".join(f"{k} {gain_text(g, 1)}" for k, g in summary.items())
        print(f"{method:8s} {text}; cost {ratio:.3f}× MT-R's")
    budget = compare_budget_pairs(curves)
    if budget:
        results["budget"] = budget
    atomic_write_text(output, json.dumps(results, indent=1) + "\n")
    print(f"\nwritten: {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
