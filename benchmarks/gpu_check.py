"""One prepared GPU check (issue 17, item 7): DeepSpeed bf16 training and bf16 GPU scoring.

Runs on one machine with one CUDA GPU, in well under 8 minutes:

1. **Training**: a Ray Train run of the quickstart model (SMT, MiniLM-L6, SF + ID) with
   DeepSpeed ZeRO-2 in bf16 (``training.strategy: deepspeed``, ``zero_stage: 2``,
   ``precision: bf16``, ``use_gpu: true``, one worker) on the synthetic corpus,
   ``--steps`` steps of ``--batch-size`` sentences; the same DeepSpeed ZeRO-2 run in fp32
   is the baseline in the same run (``--no-baseline`` skips it), so the ratio is precision
   alone.
2. **Scoring**: one GPU scoring actor (``scoring.gpus_per_actor: 1``) with MC dropout
   (k = ``--k``) under bf16 autocast (``scoring.precision: bf16``) over a ``--pool``-sentence
   pool, against the same actor in fp32.

It prints steps/s, sentences/s, the ratios bf16/fp32 and the GPU's peak memory in use
(``nvidia-smi``, sampled every 0.2 s, so every process on the GPU counts), and writes them
to ``--output`` (JSON). Without a CUDA device it says so in one line and exits 2.

    python benchmarks/gpu_check.py                       # ~3-5 min on one GPU
    python benchmarks/gpu_check.py --steps 100 --pool 5000 --output gpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


class GpuMemory:
    """The peak of ``nvidia-smi``'s memory.used (MiB) while the context is open."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.peak_mib = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        command = ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"]
        while not self._stop.is_set():
            try:
                out = subprocess.run(command, capture_output=True, text=True, timeout=5).stdout
                used = [float(v) for v in out.split() if v.strip()]
                if used:
                    self.peak_mib = max(self.peak_mib, max(used))
            except (OSError, ValueError, subprocess.SubprocessError):
                return
            self._stop.wait(self.interval)

    def __enter__(self) -> GpuMemory:
        if shutil.which("nvidia-smi"):
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)


def train(args: argparse.Namespace, corpus: Any, precision: str, work: Path) -> dict[str, Any]:
    """One Ray Train run of the quickstart model; steps/s and the GPU's peak memory."""
    from mtal_ray.models import ModelConfig
    from mtal_ray.training import TrainingConfig, train_model

    strategy = "deepspeed"
    config = TrainingConfig(
        strategy=strategy,
        zero_stage=2,
        precision=precision,
        use_gpu=args.gpu,
        num_workers=1,
        batch_size=args.batch_size,
        max_steps=args.steps,
        eval_every=args.steps,
        lr=5e-5,
    )
    with GpuMemory() as memory:
        result = train_model(
            corpus.splits["train"],
            corpus.splits["dev"],
            ["sf", "id"],
            ModelConfig(sharing="smt"),
            config,
            work / f"train_{precision}",
        )
    return {
        "strategy": strategy,
        "precision": precision,
        "steps": result.steps,
        "wall_s": round(result.wall_time_s, 1),
        "steps_per_s": round(result.steps / result.wall_time_s, 2),
        "dev": result.dev_scores,
        "peak_gpu_mib": memory.peak_mib,
        "checkpoint": str(result.checkpoint_dir),
    }


def score(args: argparse.Namespace, pool: Any, checkpoint: str, precision: str) -> dict[str, Any]:
    """One GPU scoring actor over the pool; sentences/s and the GPU's peak memory."""
    from mtal_ray.scoring.config import ScoringConfig
    from mtal_ray.scoring.pool import score_pool

    config = ScoringConfig(
        k=args.k,
        concurrency=1,
        cpus_per_actor=1,
        gpus_per_actor=1 if args.gpu else 0,
        batch_size=args.score_batch,
        max_tokens=args.score_batch * 64,
        precision=precision,
    )
    with GpuMemory() as memory:
        started = time.perf_counter()
        table = score_pool(pool, checkpoint, config)
        seconds = time.perf_counter() - started
    return {
        "precision": precision,
        "rows": table.num_rows,
        "k": args.k,
        "wall_s": round(seconds, 1),
        "sentences_per_s": round(table.num_rows / seconds, 1),
        "peak_gpu_mib": memory.peak_mib,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=200, help="training steps per run")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--pool", type=int, default=10_000, help="sentences to score")
    parser.add_argument("--k", type=int, default=10, help="MC-dropout passes")
    parser.add_argument("--score-batch", type=int, default=256)
    parser.add_argument("--no-baseline", action="store_true", help="skip the fp32 runs")
    parser.add_argument("--output", default=None, help="write the numbers as JSON here")
    parser.add_argument(
        "--smoke", action="store_true",
        help="the same code on the CPU at toy sizes (checks the script, measures nothing)",
    )  # fmt: skip
    args = parser.parse_args(argv)

    import torch

    args.gpu = not args.smoke
    if args.smoke:
        args.steps, args.batch_size, args.pool, args.k, args.score_batch = 2, 8, 64, 2, 32
    elif not torch.cuda.is_available():
        print(
            "gpu_check: no CUDA device here (torch.cuda.is_available() is false); "
            "run it on a machine with a GPU and a CUDA build of torch",
            file=sys.stderr,
        )
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from mtal_ray.data.synthetic import make_synthetic_corpus
    from mtal_ray.ray_session import ensure_ray

    corpus = make_synthetic_corpus(n_train=max(args.pool, 2000), n_dev=500, n_test=100, seed=0)
    pool = corpus.splits["train"].slice(0, args.pool).select(["id", "tokens"])
    ensure_ray()
    gpu = torch.cuda.get_device_name(0) if args.gpu else "none (--smoke: CPU)"
    out: dict[str, Any] = {"gpu": gpu, "torch": torch.__version__}
    with tempfile.TemporaryDirectory(prefix="mtal-gpu-check-") as tmp:
        work = Path(tmp)
        precisions = ["bf16"] if args.no_baseline else ["fp32", "bf16"]
        out["training"] = {p: train(args, corpus, p, work) for p in precisions}
        checkpoint = out["training"]["bf16"]["checkpoint"]
        out["scoring"] = {p: score(args, pool, checkpoint, p) for p in precisions}
    print(f"\nGPU: {out['gpu']} (torch {out['torch']})")
    print("| part | precision | throughput | wall s | peak GPU MiB |")
    print("|---|---|---:|---:|---:|")
    for p, r in out["training"].items():
        print(
            f"| training ({r['strategy']}) | {p} | {r['steps_per_s']} steps/s | {r['wall_s']} "
            f"| {r['peak_gpu_mib']:.0f} |"
        )
    for p, r in out["scoring"].items():
        print(
            f"| scoring (k={r['k']}, {r['rows']} sentences) | {p} | {r['sentences_per_s']} "
            f"sentences/s | {r['wall_s']} | {r['peak_gpu_mib']:.0f} |"
        )
    if not args.no_baseline:
        train_ratio = (
            out["training"]["bf16"]["steps_per_s"] / out["training"]["fp32"]["steps_per_s"]
        )
        score_ratio = (
            out["scoring"]["bf16"]["sentences_per_s"] / out["scoring"]["fp32"]["sentences_per_s"]
        )
        out["ratios"] = {
            "training_bf16_over_fp32": train_ratio,
            "scoring_bf16_over_fp32": score_ratio,
        }
        print(f"bf16 / fp32: training {train_ratio:.2f}x, scoring {score_ratio:.2f}x")
    if args.output:
        Path(args.output).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
