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

3. **The user's path** (first, in its own process and Ray): ``python -m mtal_ray.launch`` on
   the quickstart config with GPU training (DeepSpeed ZeRO-2, bf16) and GPU scoring (bf16)
   for 2 iterations; it prints the exit code, the run's status and its wall time
   (``--no-al-run`` skips it).

Each throughput comes twice: for the whole call (start-up included, what one small round
sees) and in the steady state (training: the optimizer steps alone, timed in the worker;
scoring: by difference against scoring a tenth of the pool, which pays the same fixed
costs). The bf16/fp32 ratios are of the steady state.

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
    steps_s = result.phases.get("steps", 0.0)
    return {
        "strategy": strategy,
        "precision": precision,
        "steps": result.steps,
        "wall_s": round(result.wall_time_s, 1),
        "steps_per_s": round(result.steps / result.wall_time_s, 2),
        # steady state: the optimizer steps alone, without start-up, dev evals, checkpoints
        "steps_phase_s": round(steps_s, 2),
        "steady_steps_per_s": round(result.steps / steps_s, 2) if steps_s > 0 else None,
        "phases": {k: round(v, 2) for k, v in result.phases.items()},
        "dev": result.dev_scores,
        "peak_gpu_mib": memory.peak_mib,
        "checkpoint": str(result.checkpoint_dir),
    }


def _score_once(pool: Any, checkpoint: str, config: Any) -> tuple[int, float]:
    from mtal_ray.scoring.pool import score_pool

    started = time.perf_counter()
    table = score_pool(pool, checkpoint, config)
    return table.num_rows, time.perf_counter() - started


def score(args: argparse.Namespace, pool: Any, checkpoint: str, precision: str) -> dict[str, Any]:
    """One GPU scoring actor over the pool; sentences/s and the GPU's peak memory.

    The steady state is measured by difference: the same scoring of a tenth of the pool
    first pays the same fixed costs (actor start, imports, model load), so the extra rows
    over the extra seconds are the scoring alone.
    """
    from mtal_ray.scoring.config import ScoringConfig

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
        small_rows, small_s = _score_once(
            pool.slice(0, max(1, pool.num_rows // 10)), checkpoint, config
        )
        rows, seconds = _score_once(pool, checkpoint, config)
    extra_s = seconds - small_s
    return {
        "precision": precision,
        "rows": rows,
        "k": args.k,
        "wall_s": round(seconds, 1),
        "sentences_per_s": round(rows / seconds, 1),
        "tenth_wall_s": round(small_s, 1),
        "steady_sentences_per_s": round((rows - small_rows) / extra_s, 1) if extra_s > 0 else None,
        "peak_gpu_mib": memory.peak_mib,
    }


def al_run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The user's path on a GPU: ``python -m mtal_ray.launch`` on the quickstart config with
    GPU training (DeepSpeed ZeRO-2, bf16) and GPU scoring (bf16), 2 iterations, as its own
    process (its own local Ray, as a job would have)."""
    gpu = "true" if args.gpu else "false"
    overrides = [
        f"training.use_gpu={gpu}",
        "training.num_workers=1",
        "training.strategy=deepspeed",
        "training.zero_stage=2",
        "training.precision=bf16",
        f"training.max_steps={args.steps}",
        f"scoring.gpus_per_actor={1 if args.gpu else 0}",
        "scoring.precision=bf16",
        f"scoring.k={args.k}",
        "al.iterations=2",
        "tracking.enabled=false",
    ]
    run_dir = work / "al_run"
    command = [
        sys.executable,
        "-m",
        "mtal_ray.launch",
        "--config",
        str(REPO / "configs" / "quickstart.yaml"),
        "--run-dir",
        str(run_dir),
        *overrides,
    ]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    with GpuMemory() as memory:
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        seconds = time.perf_counter() - started
    summary_file = run_dir / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.exists() else {}
    if done.returncode != 0:
        print(done.stdout[-3000:] + done.stderr[-3000:], file=sys.stderr)
    launch = "python -m mtal_ray.launch --config configs/quickstart.yaml"
    return {
        "command": " ".join([launch, *overrides]),
        "rc": done.returncode,
        "status": summary.get("status"),
        "wall_s": round(seconds, 1),
        "rows": summary.get("rows"),
        "peak_gpu_mib": memory.peak_mib,
    }


def _text(value: float | None) -> str:
    return "n/a" if value is None else f"{value}"


def _ratio(runs: dict[str, dict[str, Any]], key: str) -> float | None:
    """bf16's steady-state throughput over fp32's (None where either is unknown)."""
    bf16, fp32 = runs["bf16"].get(key), runs["fp32"].get(key)
    return round(bf16 / fp32, 2) if bf16 and fp32 else None


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
    parser.add_argument(
        "--no-al-run", action="store_true", help="skip the 2-iteration launcher run on the GPU"
    )
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
    gpu = torch.cuda.get_device_name(0) if args.gpu else "none (--smoke: CPU)"
    out: dict[str, Any] = {"gpu": gpu, "torch": torch.__version__}
    with tempfile.TemporaryDirectory(prefix="mtal-gpu-check-") as tmp:
        work = Path(tmp)
        if not args.no_al_run:  # first: its own Ray, before this process starts one
            out["al_run"] = al_run(args, work)
        ensure_ray()
        precisions = ["bf16"] if args.no_baseline else ["fp32", "bf16"]
        out["training"] = {p: train(args, corpus, p, work) for p in precisions}
        checkpoint = out["training"]["bf16"]["checkpoint"]
        out["scoring"] = {p: score(args, pool, checkpoint, p) for p in precisions}
    print(f"\nGPU: {out['gpu']} (torch {out['torch']})")
    print("| part | precision | whole call | steady state | wall s | peak GPU MiB |")
    print("|---|---|---:|---:|---:|---:|")
    for p, r in out["training"].items():
        print(
            f"| training ({r['strategy']}) | {p} | {r['steps_per_s']} steps/s "
            f"| {_text(r['steady_steps_per_s'])} steps/s | {r['wall_s']} "
            f"| {r['peak_gpu_mib']:.0f} |"
        )
    for p, r in out["scoring"].items():
        print(
            f"| scoring (k={r['k']}, {r['rows']} sentences) | {p} | {r['sentences_per_s']} "
            f"sentences/s | {_text(r['steady_sentences_per_s'])} sentences/s | {r['wall_s']} "
            f"| {r['peak_gpu_mib']:.0f} |"
        )
    if "al_run" in out:
        run = out["al_run"]
        print(
            f"launcher, 2 iterations on the GPU (train bf16 DeepSpeed, score bf16): "
            f"rc {run['rc']}, status {run['status']}, {run['wall_s']} s, "
            f"peak GPU {run['peak_gpu_mib']:.0f} MiB"
        )
    if not args.no_baseline:
        train_ratio = _ratio(out["training"], "steady_steps_per_s")
        score_ratio = _ratio(out["scoring"], "steady_sentences_per_s")
        out["ratios"] = {
            "training_bf16_over_fp32": train_ratio,
            "scoring_bf16_over_fp32": score_ratio,
        }
        print(
            f"bf16 / fp32, steady state: training {_text(train_ratio)}x, "
            f"scoring {_text(score_ratio)}x"
        )
    if args.output:
        Path(args.output).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
