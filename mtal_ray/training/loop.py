"""The per-worker training function run by Ray Train (one process per worker), or in the
calling process (``training.num_workers: 0``: :func:`train_in_this_process`).

:func:`run_loop` builds the model, resumes from ``ray.train.get_checkpoint()``
if the run is restarted (after a worker failure, or when ``fit()`` is called again with
the same run directory), and trains with AdamW under DDP or a DeepSpeed ZeRO engine (a
:class:`~mtal_ray.training.runners.Runner` chosen by ``training.strategy``).

* Data: each epoch is one permutation (seeded by ``seed + epoch``, identical on all
  workers); worker ``r`` of ``w`` takes its own contiguous share and cuts it into micro
  batches of ``batch_size / w`` rows; every worker runs the same number of steps.
* Dropout: the torch generator is re-seeded before every step from (seed, step, rank), so
  a training restarted from a checkpoint (a lost worker or node) draws the same masks as
  an undisturbed one and ends with the same model.
* Every ``eval_every`` steps (and at ``max_steps``) the dev set is predicted, sharded over
  the workers and gathered, so every worker computes the same scores and takes the same
  early-stopping decision (stop after ``patience`` evaluations without a better geometric
  mean of the dev scores, each floored at ``training.selection_floor`` so that a task at 0
  does not make every evaluation tie). Each evaluation reports metrics; the last one and one
  that is the best so far (every one with ``training.checkpoint_when: every-eval``) also a
  checkpoint (``mtal_ray.training.checkpoint`` layout plus the resume state). The steps are
  seeded, so a restart from an older checkpoint replays them to the same model.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch
import torch.distributed as dist

from mtal_ray.data.vocab import LabelVocab
from mtal_ray.logs import progress
from mtal_ray.models.build import build_model
from mtal_ray.models.collate import Collator
from mtal_ray.models.config import ModelConfig
from mtal_ray.models.inference import (
    geometric_mean,
    predict_rows,
    score_predictions,
    selection_score,
)
from mtal_ray.models.multitask import MultiTaskModel
from mtal_ray.tasks.base import Prediction
from mtal_ray.tasks.registry import build_tasks
from mtal_ray.training.checkpoint import PREDICTIONS_FILE, CheckpointInfo, save_checkpoint
from mtal_ray.training.config import TrainingConfig
from mtal_ray.training.local_mode import keep_checkpoint, staging_dir
from mtal_ray.training.runners import TRAIN_STATE_FILE as TRAIN_STATE_FILE  # re-exported
from mtal_ray.training.runners import make_runner
from mtal_ray.training.runners import param_groups as param_groups  # re-exported
from mtal_ray.training.safe_load import load_tensors
from mtal_ray.training.sampling import TaskSampler, combine_losses

#: When this module's imports (torch, transformers, the model code) were done.
LOADED_AT = time.time()

LOOP_FILE = "loop.json"


@dataclass
class TrainingProgress:
    """Where training stands (step, epoch, early stopping); saved in every checkpoint."""

    step: int = 0
    epoch: int = 0
    epoch_batch: int = 0
    best_gmean: float = -1.0  # dev geometric mean of the best evaluation (reported)
    best_step: int = 0
    bad_evals: int = 0
    best_score: float = -1.0  # its selection score (models.inference.selection_score)

    def record(self, scores: Mapping[str, float], floor: float) -> float:
        """Record an evaluation of ``scores`` (task -> dev main score) at ``self.step``.

        The best evaluation is the one with the highest :func:`selection_score` (the
        geometric mean with each score floored at ``floor``; the earlier one on a tie); an
        evaluation that is not better counts towards ``patience``. Returns its score.
        """
        score = selection_score(list(scores.values()), floor)
        if score > self.best_score:
            self.best_score, self.best_step, self.bad_evals = score, self.step, 0
            self.best_gmean = geometric_mean(list(scores.values()))
        else:
            self.bad_evals += 1
        return score


def epoch_batches(
    n_rows: int, rank: int, world: int, micro_batch: int, seed: int, epoch: int
) -> list[np.ndarray]:
    """This worker's micro batches (row indices) of one epoch."""
    share = max(1, n_rows // world)
    order = np.random.default_rng(seed + epoch).permutation(n_rows)
    if n_rows < world:  # tiny sets: workers reuse rows rather than idle
        order = np.resize(order, world)
    mine = order[rank * share : (rank + 1) * share]
    return [mine[i : i + micro_batch] for i in range(0, share, micro_batch)]


def evaluate_sharded(
    model: MultiTaskModel,
    collator: Collator,
    table: pa.Table,
    batch_size: int,
    device: torch.device,
) -> tuple[list[Prediction], dict[str, dict[str, float]], float]:
    """Predict ``table`` sharded over the process group; every rank gets all predictions."""
    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    rank = dist.get_rank() if world > 1 else 0
    rows = list(range(rank, table.num_rows, world))
    mine = predict_rows(model, collator, table.take(rows), batch_size, device) if rows else []
    shards: list[Any] = [(rows, mine)]
    if world > 1:
        shards = [None] * world
        dist.all_gather_object(shards, (rows, mine))
    predictions: list[Prediction] = [{} for _ in range(table.num_rows)]
    for shard_rows, shard_preds in shards:
        for row, pred in zip(shard_rows, shard_preds, strict=True):
            predictions[row] = pred
    scores = score_predictions(model, predictions, table)
    return predictions, scores, geometric_mean([s["main"] for s in scores.values()])


def _batches_from(state: TrainingProgress, rows: int, rank: int, world: int, cfg: TrainingConfig):
    """Yield ``(epoch, index_in_epoch, row indices)`` forever, resuming inside an epoch."""
    epoch, skip = state.epoch, state.epoch_batch
    while True:
        batches = epoch_batches(rows, rank, world, cfg.micro_batch_size(), cfg.seed, epoch)
        for i, batch in enumerate(batches):
            if i >= skip:
                yield epoch, i, batch
        epoch, skip = epoch + 1, 0


def progress_line(metrics: dict[str, Any], max_steps: int, tasks: list[str]) -> str:
    """One evaluation's progress: step, loss, dev scores, the best so far."""
    dev = ", ".join(f"{t} {metrics[f'dev_{t}']:.4f}" for t in tasks if f"dev_{t}" in metrics)
    line = (
        f"train step {metrics['step']}/{max_steps} (epoch {metrics['epoch']}): "
        f"loss {metrics['train_loss']:.4f}; dev {dev}; geo-mean {metrics['dev_gmean']:.4f} "
        f"(best {metrics['best_dev_gmean']:.4f} at step {metrics['best_step']})"
    )
    return line + (" - stopping" if metrics["stopped"] else "")


def _quiet_worker_logs() -> None:
    """Keep job logs readable (:func:`mtal_ray.logs.setup_logging` for a Train worker):
    no per-report Ray Train lines, no HF weight-loading reports or bars.

    Metrics still reach the driver through ``ray.train.report``; only log lines are dropped.
    """
    from mtal_ray.logs import setup_logging

    setup_logging("worker")


def step_seed(seed: int, step: int, rank: int) -> int:
    """The dropout seed of one worker's step (a function of the step, not of the history)."""
    return (seed * 1_000_003 + step * 1_009 + rank) % (2**63 - 1)


class TrainSession:
    """What the loop needs of the run it is part of: its rank in the worker group, the
    device, the checkpoint to resume from and where its reports go.

    :class:`RayTrainSession` is a Ray Train worker's; :class:`LocalSession` is the calling
    process's (``training.num_workers: 0``), which needs no Ray Train at all, so it also
    runs inside a Ray Tune trial, whose session would take Ray Train's calls."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    def checkpoint(self) -> Any:
        """The checkpoint (``ray.train.Checkpoint``) to resume from, or None."""
        return None

    def report(self, metrics: dict[str, Any], directory: str | None = None) -> None:
        """Report one evaluation's ``metrics``, with the checkpoint written in ``directory``
        when given."""
        raise NotImplementedError


class RayTrainSession(TrainSession):
    """A Ray Train worker's session (``ray.train``'s context, checkpoint and report)."""

    def __init__(self) -> None:
        import ray.train
        import ray.train.torch

        context = ray.train.get_context()
        self.rank, self.world = context.get_world_rank(), context.get_world_size()
        self.device = ray.train.torch.get_device()

    def checkpoint(self) -> Any:
        import ray.train

        return ray.train.get_checkpoint()

    def report(self, metrics: dict[str, Any], directory: str | None = None) -> None:
        import ray.train
        from ray.train import Checkpoint

        checkpoint = Checkpoint.from_directory(directory) if directory is not None else None
        ray.train.report(metrics, checkpoint=checkpoint)


class LocalSession(TrainSession):
    """The calling process's session (``training.num_workers: 0``): rank 0 of 1 on the
    CPU, a fresh start, the last report kept in :attr:`last_metrics`; the checkpoints are
    the loop's own (:mod:`mtal_ray.training.local_mode`)."""

    def __init__(self) -> None:
        self.last_metrics: dict[str, Any] | None = None

    def report(self, metrics: dict[str, Any], directory: str | None = None) -> None:
        self.last_metrics = dict(metrics)


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Ray Train worker entry point (see the module docstring for the protocol).

    ``config`` keys: ``train``/``dev`` (Arrow tables), ``tasks``, ``vocabs`` (task ->
    ``LabelVocab.to_dict()``), ``model`` and ``training`` (config dumps), and optionally
    ``fault_at_step`` (tests: the last worker kills itself at that step on a fresh start).
    """
    _quiet_worker_logs()  # a Train worker's process: its logs are ours to set
    run_loop(config, RayTrainSession())


def train_in_this_process(config: dict[str, Any]) -> dict[str, Any] | None:
    """The training of ``config`` (as :func:`train_loop_per_worker`'s, plus
    ``local_checkpoints``: the folder the loop keeps its checkpoints in) run in the calling
    process without Ray Train (``training.num_workers: 0``). Returns the last report."""
    session = LocalSession()
    run_loop(config, session)
    return session.last_metrics


def run_loop(config: dict[str, Any], session: TrainSession) -> None:
    """The training loop of one worker of ``session`` (module docstring)."""
    local_dir = config.get("local_checkpoints")
    rank, world, device = session.rank, session.world, session.device
    cfg = TrainingConfig(**config["training"])
    model_cfg = ModelConfig(**config["model"])
    vocabs = {t: LabelVocab.from_dict(v) for t, v in config["vocabs"].items()}
    train: pa.Table = config["train"]
    dev: pa.Table = config["dev"]

    torch.manual_seed(cfg.seed)
    tasks = build_tasks(config["tasks"], vocabs)
    model, collator = build_model(tasks, model_cfg)
    model.to(device)
    state = TrainingProgress()
    checkpoint = session.checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            state = TrainingProgress(**json.loads((Path(directory) / LOOP_FILE).read_text()))
            if (Path(directory) / "model.pt").is_file():
                weights = load_tensors(Path(directory) / "model.pt", "model weights", device)
                model.load_state_dict(weights)
    start_step = state.step
    runner = make_runner(model, cfg, world)
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            runner.load_state(Path(directory))

    alphas = {t: cfg.label_smoothing.get(t, 0.0) for t in tasks}
    # where this attempt's time goes (reported with every evaluation; the driver's
    # ``TrainResult.phases`` reads the last report)
    from mtal_ray.training import IMPORTED_AT

    clock = {
        "t_imports_started": IMPORTED_AT,
        "t_imports_done": LOADED_AT,
        "t_worker_ready": time.time(),  # wall clock: the driver compares with its own
    }
    spent = {"s_steps": 0.0, "s_eval": 0.0, "s_checkpoint": 0.0}
    # kept on the device until the next evaluation: a float() per step would wait for the
    # GPU at every step (no overlap of the next batch's collation with this step's kernels)
    losses_since_eval: list[torch.Tensor] = []
    stop = state.step >= cfg.max_steps
    model.train()
    sampler = None  # training.task_sampling: one task per step (mtal_ray.training.sampling)
    if cfg.task_sampling != "joint":
        sampler = TaskSampler.from_table(
            train,
            {t: tasks[t].columns[0] for t in tasks},
            cfg.task_sampling,
            cfg.micro_batch_size() * world,
            cfg.sampling_temperature,
            cfg.seed,
        )
    source = (
        _batches_from(state, train.num_rows, rank, world, cfg)
        if sampler is None
        else sampler.batches(state.step, rank, world)
    )
    step_started = time.perf_counter()
    for epoch, index, rows in source:
        if stop:
            break
        if (
            config.get("fault_at_step") == state.step
            and start_step == 0
            and rank == world - 1
            and local_dir is None  # never the caller's own process
        ):
            # injected fault (tests): let the controller register the last checkpoint
            # (it polls workers every 2 s), then die as a crashed process would
            time.sleep(8)
            os.kill(os.getpid(), signal.SIGKILL)
        torch.manual_seed(step_seed(cfg.seed, state.step, rank))
        batch = collator(train.take(rows)).to(device)
        with runner.autocast(device):  # training.precision
            losses = runner.wrapped(batch, alphas)
            drawn = sampler.task_at(state.step) if sampler is not None else None
            loss = combine_losses({t: losses[t] for t in tasks}, cfg.weight, drawn)
        runner.backward(loss)
        runner.step()
        losses_since_eval.append(loss.detach())
        state.step += 1
        state.epoch, state.epoch_batch = epoch, index + 1
        if state.step % cfg.eval_every and state.step < cfg.max_steps:
            continue
        spent["s_steps"] += time.perf_counter() - step_started
        eval_started = time.perf_counter()
        predictions, scores, gmean = evaluate_sharded(
            model, collator, dev, cfg.eval_batch_size, device
        )
        spent["s_eval"] += time.perf_counter() - eval_started
        select = state.record({t: s["main"] for t, s in scores.items()}, cfg.selection_floor)
        stop = state.bad_evals >= cfg.patience or state.step >= cfg.max_steps
        metrics = {
            "step": state.step,
            "epoch": state.epoch,
            "train_loss": float(torch.stack(losses_since_eval).double().mean()),
            "dev_gmean": gmean,
            "dev_select": select,  # the checkpoint-selection criterion (floored geo-mean)
            "best_dev_gmean": state.best_gmean,
            "best_step": state.best_step,
            "start_step": start_step,
            "stopped": stop,
            **{f"dev_{t}": s["main"] for t, s in scores.items()},
            **clock,
            **spent,  # up to this evaluation (the checkpoint below counts in the next)
        }
        if rank == 0:  # progress: one line per evaluation (the job log shows it)
            progress(progress_line(metrics, cfg.max_steps, list(tasks)))
        losses_since_eval = []
        checkpoint_started = time.perf_counter()
        if cfg.checkpoint_when == "improved" and state.best_step != state.step and not stop:
            # not the best so far: the round will not keep it, and a restart from the last
            # best replays the steps since (seeded) to this very state; same on every rank.
            # The last evaluation always checkpoints: Ray Train's result carries only the
            # metrics of checkpointed reports (steps, phases: TrainResult)
            session.report(metrics)
        else:
            with (
                tempfile.TemporaryDirectory(prefix="mtal-ckpt-")
                if local_dir is None  # Ray Train copies it to its storage on report
                else contextlib.nullcontext(str(staging_dir(Path(local_dir), state.step)))
            ) as tmp:
                directory = Path(tmp)
                runner.save_state(directory, rank)
                if rank == 0:
                    info = CheckpointInfo(
                        tasks=list(tasks),
                        vocabs=vocabs,
                        model=model_cfg,
                        training=cfg.model_dump(),
                        step=state.step,
                        dev_scores={t: s["main"] for t, s in scores.items()},
                        dev_gmean=gmean,
                    )
                    weights = runner.state_dict_for_export()
                    save_checkpoint(directory, model, collator, info, weights)
                    (directory / LOOP_FILE).write_text(json.dumps(asdict(state)))
                    _write_predictions(directory / PREDICTIONS_FILE, dev, predictions, model)
                has_files = any(directory.iterdir())
                if local_dir is not None:  # in this process: the loop keeps its checkpoints
                    keep_checkpoint(directory, metrics, cfg.checkpoints_to_keep)
                    session.report(metrics)
                else:  # Ray Train copies the folder to its storage
                    session.report(metrics, tmp if has_files else None)
        spent["s_checkpoint"] += time.perf_counter() - checkpoint_started
        step_started = time.perf_counter()
        if math.isnan(metrics["train_loss"]):
            raise FloatingPointError(f"training loss is NaN at step {state.step}")


def _write_predictions(
    path: Path, dev: pa.Table, predictions: list[Prediction], model: MultiTaskModel
) -> None:
    import pyarrow.parquet as pq

    from mtal_ray.data.schema import make_table

    columns: dict[str, list[Any]] = {"id": dev.column("id").to_pylist()}
    for name in model.order:
        for column in model.tasks[name].columns:
            columns[column] = [p.get(column) for p in predictions]
    pq.write_table(make_table(columns), path)
