"""Architecture benchmark: ST, SMT, CMT, hierarchical and SC-LSTM on the real corpora.

For each scenario (``conll04``: NER + RE; ``ewt_dp_ner``: DP + NER) and each sharing
scheme, with the same seed and training settings:

* **full**: one :func:`mtal_ray.training.train_model` run on the (optionally limited)
  training split, test scores and wall time;
* **AL**: the MT-AL loop (:class:`mtal_ray.driver.loop.ActiveLearningLoop`) with MT-AVG for
  ``--al-iterations`` trainings (default 4 = the initial set + 3 selected rounds), test
  scores of the last model and wall time of the whole run. ``--limit-pool`` bounds the
  unlabeled pool (the AL part only), so a large corpus's pool scoring stays affordable.

``st`` trains one single-task model per task (wall time summed) and, in the AL columns,
runs ST-AL per task (``st-ec`` on that task's own model and selection). RE needs NER in
the same model (it reads NER's predicted mentions), so ``st`` has no RE score.

The baseline is ``smt`` (the paper's shared encoder), measured in the same run; the table
prints each scheme's test geometric mean next to it. CPU budget: MiniLM-L6 trains at ~45
sentences/s on 2 idle cores; ``--max-steps`` bounds every training.

    python benchmarks/architectures.py --scenarios conll04 --max-steps 150
    python benchmarks/architectures.py --scenarios ewt_dp_ner --limit-pool 3000
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

from mtal_ray.config import ExperimentConfig
from mtal_ray.data import load_corpus
from mtal_ray.data.atomic import atomic_write_text
from mtal_ray.data.splits import sample_rows
from mtal_ray.models import ModelConfig
from mtal_ray.training import TrainingConfig, train_model

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
SCENARIOS = {"conll04": ["ner", "re"], "ewt_dp_ner": ["dp", "ner"]}
SCHEMES = ["st", "smt", "cmt", "hierarchical", "sclstm"]
#: Scheme-specific model keys (the rest is shared by all schemes).
MODEL_KEYS: dict[str, dict[str, Any]] = {
    "hierarchical": {"hierarchy": {"ner": 4}},  # ner at 4; re / dp at the top (6)
    "sclstm": {"sclstm": {"hidden_size": 256, "layers": 2}},
}


def gmean(scores: dict[str, float | None]) -> float | None:
    values = [v for v in scores.values() if v is not None]
    if not values or len(values) < len(scores):
        return None
    return math.exp(sum(math.log(max(v, 1e-9)) for v in values) / len(values))


def training_config(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "num_workers": args.workers,
        "batch_size": args.batch_size,
        "max_steps": args.max_steps,
        "eval_every": args.eval_every,
        "patience": 2,
        "head_lr": 1e-3,
        "seed": args.seed,
    }


def full_training(
    scenario: str, tasks: list[str], scheme: str, args: argparse.Namespace, out: Path
) -> dict[str, Any]:
    corpus = load_corpus(DATA / scenario)
    train = corpus.splits["train"]
    if args.limit_train:
        train = train.slice(0, args.limit_train)
    dev = sample_rows(corpus.splits["dev"], args.limit_eval, args.seed)
    test = sample_rows(corpus.splits["test"], args.limit_eval, args.seed)
    training = TrainingConfig(**training_config(args))
    started = time.perf_counter()
    scores: dict[str, float | None] = {}
    if scheme == "st":
        for task in tasks:
            if task == "re":  # RE reads NER's mentions: no single-task RE model
                scores[task] = None
                continue
            result = train_model(
                train, dev, [task], ModelConfig(sharing="st"), training, out / task, test=test
            )
            scores[task] = (result.test_scores or {})[task]
    else:
        model = ModelConfig(sharing=scheme, **MODEL_KEYS.get(scheme, {}))
        result = train_model(train, dev, tasks, model, training, out, test=test)
        scores = dict(result.test_scores or {})
    return {"test": scores, "wall_s": time.perf_counter() - started}


def al_run(
    scenario: str, tasks: list[str], scheme: str, args: argparse.Namespace, out: Path
) -> dict[str, Any]:
    from mtal_ray.driver.loop import ActiveLearningLoop

    def experiment(run_tasks: list[str], sharing: str, selection: dict[str, Any]) -> Any:
        return ExperimentConfig.model_validate(
            {
                "seed": args.seed,
                "data": {
                    "path": str(DATA / scenario),
                    "tasks": run_tasks,
                    "initial_fraction": args.initial_fraction,
                    "limit_train": args.limit_pool or args.limit_train,
                    "limit_eval": args.limit_eval,
                },
                "model": {"sharing": sharing, **MODEL_KEYS.get(sharing, {})},
                # the experiment's top-level seed derives each round's training seed
                "training": {k: v for k, v in training_config(args).items() if k != "seed"},
                "scoring": {"k": 4, "concurrency": 1, "cpus_per_actor": 1},
                "selection": selection,
                "al": {"iterations": args.al_iterations},
                "tracking": {"enabled": False},
            }
        )

    started = time.perf_counter()
    scores: dict[str, float | None] = {}
    labeled = None
    if scheme == "st":
        for task in tasks:
            if task == "re":
                scores[task] = None
                continue
            config = experiment([task], "st", {"method": "st-ec", "task": task})
            summary = ActiveLearningLoop(config, out / task, echo=_echo).run()
            scores[task] = summary.rows[-1].get(f"test.{task}")
            labeled = summary.rows[-1]["labeled"]
    else:
        config = experiment(tasks, scheme, {"method": "mt-avg"})
        summary = ActiveLearningLoop(config, out, echo=_echo).run()
        scores = {t: summary.rows[-1].get(f"test.{t}") for t in tasks}
        labeled = summary.rows[-1]["labeled"]
    return {"test": scores, "wall_s": time.perf_counter() - started, "labeled": labeled}


def _echo(line: str) -> None:
    print(f"    {line}", flush=True)


def settings(args: argparse.Namespace, part: str) -> dict[str, Any]:
    """What a part was measured with (kept beside its scores in ``results.json``)."""
    keys = ["max_steps", "eval_every", "batch_size", "workers", "limit_eval", "seed"]
    keys += (
        ["limit_train"] if part == "full" else ["limit_pool", "al_iterations", "initial_fraction"]
    )
    return {key: getattr(args, key) for key in keys}


def _fmt(value: float | None) -> str:
    return "  n/a " if value is None else f"{100 * value:6.2f}"


def print_table(results: dict[str, dict[str, dict[str, Any]]]) -> None:
    for scenario, by_scheme in results.items():
        tasks = SCENARIOS[scenario]
        print(f"\n{scenario} ({' + '.join(tasks)}), test scores ×100, wall seconds")
        head = " | ".join(f"full {t:>4}" for t in tasks) + " | full gm | full s"
        head += " | " + " | ".join(f"AL {t:>4}" for t in tasks) + " | AL gm | AL s"
        print(f"{'scheme':<13}| {head}")
        base = by_scheme.get("smt", {})
        for scheme, res in by_scheme.items():
            cells = []
            for kind in ("full", "al"):
                part = res.get(kind)
                if part is None:
                    cells += ["   -  "] * len(tasks) + ["   -  ", "    - "]
                    continue
                cells += [_fmt(part["test"].get(t)) for t in tasks]
                cells += [_fmt(gmean(part["test"])), f"{part['wall_s']:6.0f}"]
            print(f"{scheme:<13}| " + " | ".join(cells))
        if base:
            print("(baseline: smt, the paper's shared encoder, same seed and settings)")
        for kind in ("full", "al"):
            seen = {
                json.dumps(res[kind].get("settings"), sort_keys=True)
                for res in by_scheme.values()
                if kind in res
            }
            for item in sorted(seen):
                print(f"{kind} settings: {item}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    parser.add_argument("--schemes", nargs="+", default=SCHEMES, choices=SCHEMES)
    parser.add_argument("--parts", nargs="+", default=["full", "al"], choices=["full", "al"])
    parser.add_argument("--limit-train", type=int, default=None)
    parser.add_argument("--limit-eval", type=int, default=200)
    parser.add_argument("--max-steps", type=int, default=150)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--limit-pool", type=int, default=None, help="AL part: first N train rows")
    parser.add_argument("--al-iterations", type=int, default=4)
    parser.add_argument("--initial-fraction", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=REPO / "runs" / "bench_architectures")
    args = parser.parse_args()

    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    results_file = args.output / "results.json"
    if results_file.is_file():  # resume: keep what an earlier invocation measured
        results = json.loads(results_file.read_text())
    try:
        for scenario in args.scenarios:
            tasks = SCENARIOS[scenario]
            for scheme in args.schemes:
                entry = results.setdefault(scenario, {}).setdefault(scheme, {})
                for part in args.parts:
                    if part in entry:
                        continue
                    out = args.output / scenario / scheme / part
                    run = full_training if part == "full" else al_run
                    print(f"{scenario} {scheme} {part}: running", flush=True)
                    entry[part] = run(scenario, tasks, scheme, args, out)
                    entry[part]["settings"] = settings(args, part)
                    print(f"{scenario} {scheme} {part}: {json.dumps(entry[part])}", flush=True)
                    atomic_write_text(results_file, json.dumps(results, indent=2))
    finally:
        ray.shutdown()
    print_table(results)


if __name__ == "__main__":
    main()
