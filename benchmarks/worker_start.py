"""Two ways to shorten a Ray Train worker-group start, measured on this machine.

1. **Idle-worker reuse**: does Ray give a new actor an idle worker process (one that ran
   tasks before), with the job's runtime env, another one, or none? If it did, prestarted
   workers could absorb the process start of every Train worker and scoring actor.
2. **Background imports at worker start**: a ``worker_process_setup_hook`` (job level)
   that starts importing ``mtal_ray.training.loop`` in a thread, so that the imports overlap
   Ray's start-up RPCs. Baseline: the same tiny-model fit without it; the two arms
   alternate, each in a Ray session of its own; the measure is the fit's
   ``start + imports + model_load`` (``TrainResult.phases``).

    python benchmarks/worker_start.py                # 4 fits per arm, ~4 minutes
    python benchmarks/worker_start.py --fits 2

Output: ``benchmarks/results/worker_start.json`` and a summary on stdout. Run it on a quiet
machine: the start-up is CPU-bound and anything else running shifts both arms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULT = HERE / "results" / "worker_start.json"


def prewarm() -> None:
    """The setup hook under test (runs in every worker process of the job)."""

    def load() -> None:
        import mtal_ray.training.loop  # noqa: F401

    threading.Thread(target=load, daemon=True).start()


def actor_reuse() -> list[dict[str, object]]:
    """For each runtime env: did the new actor land in an idle (task) worker process?"""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": {"PROBE": "1"}})

    @ray.remote
    def pid() -> int:
        return os.getpid()

    @ray.remote(num_cpus=1)
    class Probe:
        def pid(self) -> int:
            return os.getpid()

    out = []
    try:
        idle = set(ray.get([pid.remote() for _ in range(2)]))
        for label, env in (
            ("none", None),
            ("the job's", {"env_vars": {"PROBE": "1"}}),
            ("another", {"env_vars": {"OTHER": "1"}}),
        ):
            time.sleep(1.0)  # the task workers are idle now
            started = time.perf_counter()
            actor = Probe.options(runtime_env=env).remote() if env else Probe.remote()
            got = ray.get(actor.pid.remote())
            seconds = time.perf_counter() - started
            out.append({"runtime_env": label, "reused": got in idle, "seconds": round(seconds, 2)})
            ray.kill(actor)
            idle |= set(ray.get([pid.remote() for _ in range(2)]))
    finally:
        ray.shutdown()
    return out


def fit_start(hook: bool, fits: int, folder: Path, encoder: str) -> list[float]:
    """``start + imports + model_load`` of ``fits`` tiny-model fits in one Ray session."""
    import ray

    sys.path.insert(0, str(HERE.parent / "tests"))
    from models_sample_rows import sf_id_table

    from mtal_ray.models import ModelConfig
    from mtal_ray.training import TrainingConfig, train_model

    env: dict[str, object] = {"env_vars": {"PYTHONPATH": str(HERE)}}
    if hook:
        env["worker_process_setup_hook"] = "worker_start.prewarm"
    ray.init(num_cpus=2, include_dashboard=False, runtime_env=env)
    table = sf_id_table(24)
    spent = []
    try:
        for i in range(fits):
            result = train_model(
                table.slice(0, 16),
                table.slice(16),
                ["sf", "id"],
                ModelConfig(encoder=encoder),
                TrainingConfig(num_workers=1, batch_size=8, eval_every=2, max_steps=2),
                folder / f"{'hook' if hook else 'base'}{time.time_ns()}_{i}",
            )
            p = result.phases
            spent.append(p["start"] + p["imports"] + p["model_load"])
            print(f"  {'hook' if hook else 'base'}: {spent[-1]:.1f}s", flush=True)
    finally:
        ray.shutdown()
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fits", type=int, default=4, help="fits per arm (even)")
    parser.add_argument("--output", type=Path, default=RESULT)
    args = parser.parse_args()
    from mtal_ray.data.atomic import atomic_write_text
    from mtal_ray.models.tiny import make_tiny_encoder

    print("1. does a new actor get an idle worker process?")
    reuse = actor_reuse()
    for row in reuse:
        print(f"  runtime env {row['runtime_env']:<9}: reused={row['reused']}  {row['seconds']}s")
    print("2. start + imports + model_load of a tiny-model fit, with and without the hook")
    folder = Path(tempfile.mkdtemp(prefix="worker_start_"))
    encoder = make_tiny_encoder(folder / "encoder")
    arms: dict[str, list[float]] = {"base": [], "hook": []}
    half = max(1, args.fits // 2)
    for order in ((False, True), (True, False)):  # alternate, each in its own Ray session
        for hook in order:
            arms["hook" if hook else "base"] += fit_start(hook, half, folder, encoder)
    medians = {k: round(statistics.median(v), 2) for k, v in arms.items()}
    print(f"  median: without {medians['base']}s, with the hook {medians['hook']}s")
    result = {
        "actor_reuse": reuse,
        "fit_start_s": {k: [round(x, 2) for x in v] for k, v in arms.items()},
        "median_s": medians,
    }
    atomic_write_text(args.output, json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
