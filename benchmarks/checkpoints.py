"""What a round's training spends writing checkpoints: every evaluation (the baseline) or
only the best-so-far and the last (``training.checkpoint_when: improved``, the default).

One ATIS training with the validity study's protocol (MiniLM-L6, 2 % of the pool = 90
labeled sentences, a dev set twice that, ``epochs: 20`` with an evaluation every 2 epochs,
patience 3, at least 100 steps, batch 16), run twice in the same process and Ray session
with the same seed: ``checkpoint_when: every-eval`` then ``improved``. Both keep every
checkpoint they write (``keep_checkpoints``) so that they can be counted.

Measured: checkpoints written, the ``checkpoint`` phase (seconds the workers spent writing
and reporting them), the whole call; and that the two trainings are the same training
(best step, dev and test scores equal): checkpointing less must not change the model.

    python benchmarks/checkpoints.py            # ~6 min on 2 idle cores

Output: ``benchmarks/results/checkpoints.json`` and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mtal_ray.data.atomic import atomic_write_text

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "checkpoints.json"
ATIS = REPO.parent / "shared" / "data" / "atis"
ARMS = ("every-eval", "improved")


def train_once(when: str, labeled: int, seed: int, out: Path) -> dict[str, Any]:
    """One training of the protocol with ``checkpoint_when=when``; what it wrote and cost."""
    import numpy as np

    from mtal_ray.data.corpus import load_corpus
    from mtal_ray.models import ModelConfig
    from mtal_ray.training import TrainingConfig, train_model

    corpus = load_corpus(ATIS, "slu")
    train_split, dev_split = corpus.splits["train"], corpus.splits["dev"]
    rng = np.random.default_rng(seed)
    train = train_split.take(rng.permutation(train_split.num_rows)[:labeled])
    dev = dev_split.take(rng.permutation(dev_split.num_rows)[: 2 * labeled])
    config = TrainingConfig(
        num_workers=1, cpus_per_worker=1, batch_size=16, lr=5e-5, head_lr=1e-3,
        epochs=20, eval_every_epochs=2, patience=3, min_steps=100, max_steps=3000,
        label_smoothing={"sf": 0.1, "id": 0.1}, seed=seed,
        checkpoint_when=when, keep_checkpoints=True, checkpoints_to_keep=1000,
    )  # fmt: skip
    started = time.perf_counter()
    result = train_model(
        train, dev, ["sf", "id"], ModelConfig(), config, out, test=corpus.splits["test"]
    )
    wall = time.perf_counter() - started
    written = [p for p in (out / "train").rglob("checkpoint_*") if p.is_dir()]
    eval_every = config.for_rows(labeled).eval_every
    return {
        "checkpoints": len(written),
        "evaluations": -(-result.steps // eval_every),  # the last one at the final step
        "checkpoint_s": round(result.phases["checkpoint"], 2),
        "wall_s": round(wall, 1),
        "steps": result.steps,
        "best_step": result.best_step,
        "dev": result.dev_scores,
        "test": result.test_scores,
        "eval_every": eval_every,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labeled", type=int, default=90, help="training sentences (2 %%)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args(argv)
    if not ATIS.is_dir():
        print(f"the ATIS corpus is not at {ATIS}", file=sys.stderr)
        return 2
    arms: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="mtal-ckpt-bench-") as tmp:
        for when in ARMS:
            print(f"[{when}] training ...", flush=True)
            arm = train_once(when, args.labeled, args.seed, Path(tmp) / when)
            arms[when] = arm
            print(f"[{when}] {json.dumps(arm)}", flush=True)
    base, ours = arms["every-eval"], arms["improved"]
    same = all(base[k] == ours[k] for k in ("steps", "best_step", "dev", "test"))
    ratio = base["checkpoint_s"] / ours["checkpoint_s"] if ours["checkpoint_s"] else None
    print("\n| checkpoint_when | evaluations | checkpoints | checkpoint s | training call s |")
    print("|---|---:|---:|---:|---:|")
    for when, arm in arms.items():
        print(
            f"| {when} | {arm['evaluations']} | {arm['checkpoints']} | "
            f"{arm['checkpoint_s']:.1f} | {arm['wall_s']:.1f} |"
        )
    saved = base["wall_s"] - ours["wall_s"]
    print(
        f"\ncheckpoint time every-eval / improved: {ratio:.2f}x; call {saved:+.1f} s saved "
        f"({100 * saved / base['wall_s']:.1f} %); same model (steps, best step, dev, test): "
        f"{same}"
    )
    output = {"protocol": vars(args), "arms": arms, "checkpoint_ratio": ratio, "same_model": same}
    atomic_write_text(Path(args.output), json.dumps(output, indent=1) + "\n")
    print(f"wrote {args.output}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
