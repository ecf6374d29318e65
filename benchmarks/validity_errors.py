"""Where the final models of a validity sweep differ: per-task precision and recall on test.

For every finished trial of a validity sweep (``benchmarks/validity.py``), the model of the
last round (``rounds/round_<last>/train/best``) is evaluated on the scenario's test split,
and each task's precision, recall and F1 are printed per trial and averaged per method.
The F1 recomputed here is checked against the one the trial recorded (the same model on
the same split), so a mismatch means the wrong files were read.

Use it to ask *why* a method trails random per sentence: e.g. on CoNLL04, whether MT-AVG's
lower RE F1 comes from precision (more false relations: fewer negative entity pairs in its
labeled set) or from recall.

    python benchmarks/validity_errors.py --sweep runs/validity/sweeps/validity_conll04 \
        --data ../shared/data/conll04 --output benchmarks/results/validity_errors_conll04.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from mtal_ray.data.atomic import atomic_write_text

METRICS = ("precision", "recall", "f1")


def final_model(trial: Path) -> tuple[Path, dict[str, float]] | None:
    """The last round's exported model of a finished trial and the test scores it recorded."""
    state_file = trial / "state.json"
    if not state_file.exists():
        return None
    state = json.loads(state_file.read_text(encoding="utf-8"))
    rounds = state.get("rounds") or []
    if not rounds or len(rounds) < int(state.get("iterations") or len(rounds)):
        return None  # unfinished
    last = rounds[-1]
    best = Path(last["checkpoint"])
    if not best.exists():  # the sweep directory moved: read it under this trial
        best = trial / "rounds" / f"round_{last['iteration']}" / "train" / "best"
    return (best, last.get("test") or {}) if best.exists() else None


def evaluate_trial(best: Path, test: Any) -> dict[str, dict[str, float]]:
    from mtal_ray.models.inference import evaluate
    from mtal_ray.training.checkpoint import load_checkpoint

    loaded = load_checkpoint(best)
    scores, _ = evaluate(loaded.model, loaded.collator, test)
    return {task: {m: float(s[m]) for m in METRICS if m in s} for task, s in scores.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sweep", required=True, help="a validity sweep's directory")
    parser.add_argument("--data", required=True, help="the scenario's corpus folder")
    parser.add_argument("--output", default=None, help="write the numbers as JSON here")
    args = parser.parse_args(argv)
    trials_dir = Path(args.sweep) / "trials"
    if not trials_dir.is_dir():
        print(f"validity_errors: {trials_dir}: no such directory", file=sys.stderr)
        return 2
    from mtal_ray.data.corpus import load_corpus

    test = load_corpus(args.data).splits["test"]
    out: dict[str, dict[str, Any]] = {}
    for trial in sorted(p for p in trials_dir.iterdir() if p.is_dir()):
        found = final_model(trial)
        if found is None:
            print(f"{trial.name}: not finished, skipped")
            continue
        best, recorded = found
        scores = evaluate_trial(best, test)
        for task, value in recorded.items():
            if task in scores and abs(scores[task]["f1"] - value) > 1e-6:
                print(
                    f"validity_errors: {trial.name}: {task} F1 {scores[task]['f1']:.4f} here "
                    f"but {value:.4f} recorded; wrong model or split",
                    file=sys.stderr,
                )
                return 1
        method, _, seed = trial.name.partition("_seed=")
        out.setdefault(method, {})[seed] = scores
        cells = "  ".join(
            f"{t} P {100 * s['precision']:.1f} R {100 * s['recall']:.1f} F1 {100 * s['f1']:.1f}"
            for t, s in scores.items()
        )
        print(f"{trial.name:<16} {cells}")
    print("\nmean over seeds (×100):")
    for method, seeds in out.items():
        tasks = next(iter(seeds.values()))
        cells = "  ".join(
            f"{t} " + " ".join(
                f"{m[0].upper()} {100 * np.mean([s[t][m] for s in seeds.values()]):.1f}"
                for m in METRICS
            )
            for t in tasks
        )  # fmt: skip
        print(f"{method:<8} ({len(seeds)} seeds)  {cells}")
    if args.output:
        atomic_write_text(Path(args.output), json.dumps(out, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
