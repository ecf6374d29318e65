"""``train_model``: one multi-task training run on Ray Train (DDP or DeepSpeed ZeRO).

The driver side: it builds the label vocabularies from the labeled training table, starts
a ``TorchTrainer`` (``ScalingConfig(num_workers, use_gpu)``, ``FailureConfig``,
``CheckpointConfig`` keeping the best checkpoints by the dev geometric mean with each
task's score floored at ``training.selection_floor``), then exports the best checkpoint
to ``output_dir/best`` (inference-only: weights, vocabularies, configs, tokenizer) and
scores it on the test table outside Ray.

It works from a plain script (``ray.init`` is called if needed) and from inside a Ray
actor or driver that already called ``ray.init`` (the actor must not hold the CPUs the
workers need: give it ``num_cpus=0`` or a fraction).

The run directory is ``output_dir/train`` (a fixed name): calling :func:`train_model`
again with the same ``output_dir`` resumes that run from its latest checkpoint, which is
how a killed driver continues; use a fresh ``output_dir`` for a new training run. Once
the best checkpoint is exported, ``output_dir/train`` (Ray Train's checkpoints, each the
size of the model plus its optimizer state) is deleted unless ``training.keep_checkpoints``:
a finished round keeps ``best/`` only.

``training.num_workers: 0`` trains in this process, without Ray Train: no controller and
no worker process (it pays no process start and no imports: the fixed cost of a small
round), Ray is not started for it, and it runs as well inside a Ray Tune trial (whose
session would take Ray Train's calls, local mode's included). The loop then keeps its
checkpoints itself (:mod:`mtal_ray.training.local_mode`); a restarted call starts that
training again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from mtal_ray.data.vocab import build_vocabs
from mtal_ray.errors import ConfigError, MtalError
from mtal_ray.logs import env_vars, quiet_transformers
from mtal_ray.models.config import ModelConfig
from mtal_ray.models.inference import evaluate, main_scores
from mtal_ray.ray_session import ensure_ray, scoped_environ
from mtal_ray.tasks.registry import build_tasks
from mtal_ray.training.checkpoint import export_inference_checkpoint, load_checkpoint
from mtal_ray.training.config import TrainingConfig
from mtal_ray.training.local_mode import LOCAL_DIR, reported_checkpoints
from mtal_ray.training.loop import train_in_this_process, train_loop_per_worker
from mtal_ray.training.runners import runner_class

RUN_NAME = "train"
BEST_DIR = "best"
#: How often Ray Train's controller polls its workers, unless the environment says
#: otherwise (Ray's default is 2 s). Each poll moves the controller on by one state, so
#: a finished training waited a few polls before its worker group shut down
#: (``benchmarks/scale.py``'s trainings: ``teardown`` 4.15 s and 3.88 s at 2 s, 0.89 s and
#: 0.94 s at 0.2 s); a poll is one small remote call per worker.
HEALTH_CHECK_INTERVAL_S = "0.2"
HEALTH_CHECK_ENV = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"


class TrainingFailedError(MtalError):
    """The Ray Train run failed (after its allowed restarts)."""


@dataclass
class TrainResult:
    """Outcome of :func:`train_model`.

    Attributes
    ----------
    checkpoint_dir
        The best checkpoint, exported for inference (``load_checkpoint`` reads it).
    dev_scores, test_scores
        ``{task: main score}`` of the best checkpoint (test: ``None`` without a test table).
    dev_gmean, test_gmean
        Geometric means of those scores.
    dev_metrics, test_metrics
        All metrics per task (e.g. ``uas``/``las``, ``precision``/``recall``).
    best_step, steps
        Step of the best checkpoint; steps trained in total.
    wall_time_s
        Wall-clock seconds of the whole call.
    resumed_from_step
        Step the last worker-group attempt started from (0 = never restarted).
    phases
        Where the wall time went, in seconds (:data:`TRAIN_PHASES`; the workers' part is
        the last attempt's).
    """

    checkpoint_dir: Path
    dev_scores: dict[str, float]
    dev_gmean: float
    test_scores: dict[str, float] | None
    test_gmean: float | None
    best_step: int
    steps: int
    wall_time_s: float
    resumed_from_step: int = 0
    dev_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    test_metrics: dict[str, dict[str, float]] | None = None
    phases: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-friendly summary."""
        return {
            "checkpoint_dir": str(self.checkpoint_dir),
            "dev": self.dev_scores,
            "dev_gmean": self.dev_gmean,
            "test": self.test_scores,
            "test_gmean": self.test_gmean,
            "best_step": self.best_step,
            "steps": self.steps,
            "wall_time_s": round(self.wall_time_s, 2),
            "resumed_from_step": self.resumed_from_step,
            "phases": {k: round(v, 2) for k, v in self.phases.items()},
        }


#: The phases of one training, in order: ``setup`` (vocabularies, checks, Ray), ``start``
#: (Train controller and worker group: queueing, placement, process start, process group),
#: ``imports`` (torch, transformers and the model code in the worker, as it unpickles the
#: training function), ``model_load`` (model build and checkpoint restore in the worker),
#: ``steps`` (forward, backward, optimizer), ``dev_eval`` (the periodic dev evaluations),
#: ``checkpoint`` (saving and reporting them), ``teardown`` (the last checkpoint and the
#: worker group's shutdown), ``export`` (the best checkpoint to ``best/``, intermediate
#: ones deleted) and ``final_eval`` (loading the exported model, dev and test scores in
#: the driver).
TRAIN_PHASES = (
    "setup",
    "start",
    "imports",
    "model_load",
    "steps",
    "dev_eval",
    "checkpoint",
    "teardown",
    "export",
    "final_eval",
)


def train_phases(
    started: float,
    fit_called: float,
    fit_returned: float,
    exported: float,
    finished: float,
    worker: dict[str, Any],
    clock_offset: float = 0.0,
) -> dict[str, float]:
    """:data:`TRAIN_PHASES` from the driver's marks and the last report's ``t_*`` marks
    (wall clock; ``clock_offset`` = wall clock minus the driver's clock) and ``s_*`` sums
    (``worker``). The phases always partition the call: a mark that is missing, earlier
    than the one before it (a worker process that had imported the code before) or after
    ``fit_returned`` counts as the nearest bound, and in-training sums larger than the time
    from the worker's ready mark to ``fit_returned`` are scaled down to it."""

    def mark(name: str, low: float) -> float:
        value = worker.get(name)
        at = low if value is None else float(value) - clock_offset
        return min(max(at, low), fit_returned)

    imports_started = mark("t_imports_started", fit_called)
    imports_done = mark("t_imports_done", imports_started)
    ready = mark("t_worker_ready", imports_done)
    inside = {
        k: max(0.0, float(worker.get(f"s_{k}", 0.0))) for k in ("steps", "eval", "checkpoint")
    }
    window = fit_returned - ready
    if sum(inside.values()) > window:
        scale = window / sum(inside.values())
        inside = {k: v * scale for k, v in inside.items()}
    phases = {
        "setup": fit_called - started,
        "start": imports_started - fit_called,
        "imports": imports_done - imports_started,
        "model_load": ready - imports_done,
        "steps": inside["steps"],
        "dev_eval": inside["eval"],
        "checkpoint": inside["checkpoint"],
        "teardown": max(0.0, window - sum(inside.values())),
        "export": exported - fit_returned,
        "final_eval": finished - exported,
    }
    return phases


def _check_inputs(train: pa.Table, dev: pa.Table, tasks: list[str]) -> None:
    if not tasks:
        raise ConfigError("tasks: at least one task is needed to train a model")
    for name, table in (("train", train), ("dev", dev)):
        for column in ("id", "tokens"):
            if column not in table.column_names:
                raise ConfigError(f"{name} table: missing column {column!r}")
        if table.num_rows == 0:
            raise ConfigError(f"{name} table: no rows")


def _worker_env(training: TrainingConfig) -> dict[str, str]:
    env = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.update(runner_class(training.strategy).worker_env(training))
    for key in ("HF_HOME", "TRANSFORMERS_CACHE", "TORCH_EXTENSIONS_DIR"):
        if key in os.environ:
            env[key] = os.environ[key]
    env.update(env_vars())  # the launcher's logging choices (mtal_ray.logs)
    return env


def _fit_in_this_process(
    loop_config: dict[str, Any], training_cfg: TrainingConfig, output_dir: Path
) -> dict[str, Any] | None:
    """The training in this process without Ray Train (``training.num_workers: 0``), with
    the workers' environment, its own torch random state (the caller's is left as it was)
    and no weight-loading reports; a failure is a :class:`TrainingFailedError`. Returns the
    last report's metrics."""
    import torch

    try:
        with (
            quiet_transformers(),  # as a worker logs: no weight-loading reports
            scoped_environ(_worker_env(training_cfg)),
            torch.random.fork_rng(devices=[]),
            worker_threads(training_cfg),
        ):
            return train_in_this_process(loop_config)
    except (MtalError, KeyboardInterrupt):
        raise
    except Exception as err:  # what a worker's failure would report
        raise TrainingFailedError(
            f"training in {output_dir} failed: {type(err).__name__}: {err}"
        ) from err


@contextlib.contextmanager
def worker_threads(training_cfg: TrainingConfig) -> Iterator[int]:
    """Torch's threads for a training in this process: inside a Ray worker process (the
    launcher's driver actor, a sweep's trial), where Ray has set one thread for an actor
    of under 2 CPUs, the threads a Train worker of ``training.cpus_per_worker`` CPUs gets
    (at least 1); elsewhere (``mtal-ray train`` without Ray) torch's own choice. Yields
    the number in force; the caller's is restored after."""
    import torch

    before = torch.get_num_threads()
    threads = before
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized() and ray.get_runtime_context().worker.mode == ray.WORKER_MODE:
            threads = max(1, int(training_cfg.cpus_per_worker))
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)


def train_model(
    train: pa.Table,
    dev: pa.Table,
    tasks: list[str],
    model_cfg: ModelConfig,
    training_cfg: TrainingConfig,
    output_dir: str | Path,
    test: pa.Table | None = None,
    *,
    fault_at_step: int | None = None,
) -> TrainResult:
    """Train a multi-task model on Ray Train and keep its best checkpoint.

    Parameters
    ----------
    train
        Labeled rows (data contract); a null task column = not annotated for that task
        (no loss). Label vocabularies are built from this table.
    dev
        Rows for evaluation every ``training.eval_every`` steps and early stopping on the
        geometric mean of the tasks' main scores (each floored at
        ``training.selection_floor``, so that it still ranks when a task scores 0).
    tasks
        Task names (``dp``, ``ner``, ``sf``, ``id``, ``re``; ``re`` needs ``ner``).
    model_cfg, training_cfg
        The ``model`` and ``training`` config sections. With ``training.epochs`` the step
        budget follows ``train``'s size (:meth:`TrainingConfig.for_rows`).
    output_dir
        Run directory (Ray Train storage under ``train/``, deleted after the export unless
        ``training.keep_checkpoints``; the best checkpoint in ``best/``).
    test
        Optional table scored with the best checkpoint.
    fault_at_step
        Test hook: the last worker kills itself at this step of a fresh attempt.
    """
    from ray.train import Checkpoint, CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    # the driver's marks on the monotonic clock; the workers' wall-clock marks are mapped
    # onto it with this offset (a wall-clock step mid-call cannot break the partition)
    start, clock_offset = time.perf_counter(), time.time() - time.perf_counter()
    tasks = list(tasks)
    _check_inputs(train, dev, tasks)
    training_cfg = training_cfg.for_rows(train.num_rows)  # training.epochs: budget from rows
    vocabs = build_vocabs(train, tasks)
    build_tasks(tasks, vocabs)  # validates task names and prerequisites early
    runner_class(training_cfg.strategy).check_available()
    output_dir = Path(output_dir).absolute()
    output_dir.mkdir(parents=True, exist_ok=True)
    local_dir = output_dir / RUN_NAME / LOCAL_DIR if training_cfg.num_workers == 0 else None
    if local_dir is not None:  # a killed attempt's checkpoints are not this training's
        shutil.rmtree(local_dir, ignore_errors=True)
    else:  # local mode needs no Ray
        ensure_ray(log_to_driver=False, gpus=training_cfg.gpu_needs())

    loop_config = {
        "train": train,
        "dev": dev,
        "tasks": tasks,
        "vocabs": {t: v.to_dict() for t, v in vocabs.items()},
        "model": model_cfg.model_dump(),
        "training": training_cfg.model_dump(),
        "fault_at_step": fault_at_step,
    }
    fit_called = time.perf_counter()
    if local_dir is not None:  # no Ray Train: the loop keeps its checkpoints in local_dir
        last = _fit_in_this_process(
            {**loop_config, "local_checkpoints": str(local_dir)}, training_cfg, output_dir
        )
        candidates = [
            (Checkpoint.from_directory(str(path)), metrics)
            for path, metrics in reported_checkpoints(local_dir)
            if "dev_select" in metrics
        ]
    else:
        trainer = TorchTrainer(
            train_loop_per_worker,
            train_loop_config=loop_config,
            scaling_config=ScalingConfig(
                num_workers=training_cfg.num_workers,
                use_gpu=training_cfg.use_gpu,
                resources_per_worker={"CPU": training_cfg.cpus_per_worker},
            ),
            torch_config=TorchConfig(backend="nccl" if training_cfg.use_gpu else "gloo"),
            run_config=RunConfig(
                name=RUN_NAME,
                storage_path=str(output_dir),
                failure_config=FailureConfig(max_failures=training_cfg.max_failures),
                checkpoint_config=CheckpointConfig(
                    num_to_keep=training_cfg.checkpoints_to_keep,
                    checkpoint_score_attribute="dev_select",  # floored geo-mean (loop.py)
                    checkpoint_score_order="max",
                ),
                worker_runtime_env={"env_vars": _worker_env(training_cfg)},
            ),
        )
        # Train hands this process's RAY_TRAIN_* variables to the controller it starts
        interval = os.environ.get(HEALTH_CHECK_ENV, HEALTH_CHECK_INTERVAL_S)
        with scoped_environ({HEALTH_CHECK_ENV: interval}):
            result = trainer.fit()
        if result.error is not None:
            raise TrainingFailedError(f"training in {output_dir} failed: {result.error}")
        candidates = [(c, m) for c, m in result.best_checkpoints if m and "dev_select" in m]
        last = result.metrics
    fit_returned = time.perf_counter()
    if not candidates:
        raise TrainingFailedError(f"training in {output_dir} reported no checkpoint")
    best, best_metrics = max(candidates, key=lambda cm: (cm[1]["dev_select"], -cm[1]["step"]))
    last_metrics = last or best_metrics
    with best.as_directory() as directory:
        best_dir = export_inference_checkpoint(directory, output_dir / BEST_DIR)
    if not training_cfg.keep_checkpoints:  # the exported model is all scoring/annotation need
        shutil.rmtree(output_dir / RUN_NAME, ignore_errors=True)

    exported = time.perf_counter()
    loaded = load_checkpoint(best_dir)
    dev_metrics, dev_gmean = evaluate(loaded.model, loaded.collator, dev)
    test_metrics = test_gmean = None
    if test is not None:
        test_metrics, test_gmean = evaluate(loaded.model, loaded.collator, test)
    finished = time.perf_counter()
    return TrainResult(
        checkpoint_dir=best_dir,
        dev_scores=main_scores(dev_metrics),
        dev_gmean=dev_gmean,
        test_scores=main_scores(test_metrics) if test_metrics is not None else None,
        test_gmean=test_gmean,
        best_step=int(best_metrics["step"]),
        steps=int(last_metrics["step"]),
        wall_time_s=finished - start,
        resumed_from_step=int(last_metrics.get("start_step", 0)),
        dev_metrics=dev_metrics,
        test_metrics=test_metrics,
        phases=train_phases(
            start, fit_called, fit_returned, exported, finished, last_metrics, clock_offset
        ),
    )
