"""Ray Train integration: DDP and DeepSpeed on 2 CPU workers, restore outside Ray, faults.

A tiny random BERT (``mtal_ray.models.tiny``) keeps every run to seconds of compute; the
code path (TorchTrainer, gloo process group, DDP / DeepSpeed engine, checkpoints) is the
real one.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from models_sample_rows import sf_id_table

from mtal_ray.models import ModelConfig, predict
from mtal_ray.training import TrainingConfig, load_checkpoint, train_model
from mtal_ray.training.checkpoint import PREDICTIONS_FILE
from mtal_ray.training.trainer import TRAIN_PHASES

pytestmark = pytest.mark.integration

TASKS = ["sf", "id"]


def small_config(**overrides: object) -> TrainingConfig:
    base = {"num_workers": 2, "batch_size": 8, "eval_every": 3, "max_steps": 6, "lr": 1e-3}
    return TrainingConfig(**{**base, **overrides})


def test_ddp_two_workers_survive_a_killed_worker_and_restore_outside_ray(
    ray_session, encoder: str, tmp_path: Path
):
    table = sf_id_table(24)
    train, dev = table.slice(0, 16), table.slice(16)
    result = train_model(
        train,
        dev,
        TASKS,
        ModelConfig(encoder=encoder),
        small_config(eval_every=2, max_failures=1),
        tmp_path,
        test=dev,
        fault_at_step=3,  # after the step-2 checkpoint, the last worker SIGKILLs itself
    )
    assert result.resumed_from_step == 2  # restarted from its checkpoint, not from 0
    assert result.steps == 6
    assert set(result.dev_scores) == set(TASKS) and set(result.test_scores or {}) == set(TASKS)
    assert 0.0 < result.dev_gmean <= 1.0
    assert result.best_step in (2, 4, 6)
    # where the time went: every phase, none negative (the
    # workers' part is the restarted attempt's; the first attempt counts in `start`), adding up to the call's wall time
    assert list(result.phases) == list(TRAIN_PHASES)
    assert min(result.phases.values()) >= 0 and result.phases["steps"] > 0
    assert result.phases["start"] + result.phases["imports"] > 0
    assert result.phases["model_load"] > 0
    assert sum(result.phases.values()) == pytest.approx(result.wall_time_s, rel=0.05)
    # the model restored outside Ray predicts exactly what the worker predicted in training
    model, collator, info = load_checkpoint(result.checkpoint_dir)
    assert info.tasks == TASKS and info.step == result.best_step
    in_worker = pq.read_table(result.checkpoint_dir / PREDICTIONS_FILE)
    restored = predict(model, collator, dev)
    for column in ("id", "sf.tags", "id.label"):
        assert restored.column(column).to_pylist() == in_worker.column(column).to_pylist()
    assert result.dev_gmean == pytest.approx(info.dev_gmean)
    # the round keeps the exported model only: Ray Train's checkpoints are gone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None, reason="needs deepspeed")
def test_deepspeed_zero2_two_workers(ray_session, encoder: str, tmp_path: Path):
    table = sf_id_table(24)
    result = train_model(
        table.slice(0, 16),
        table.slice(16),
        TASKS,
        ModelConfig(encoder=encoder),
        small_config(strategy="deepspeed", zero_stage=2, keep_checkpoints=True),
        tmp_path,
    )
    assert result.steps == 6 and result.test_scores is None
    kept = [p for p in (tmp_path / "train").rglob("checkpoint_*") if p.is_dir()]
    assert kept, "training.keep_checkpoints=true keeps Ray Train's checkpoints"
    assert set(result.dev_scores) == set(TASKS)
    model, collator, _ = load_checkpoint(result.checkpoint_dir)
    assert predict(model, collator, table.slice(16)).num_rows == 8


@pytest.mark.parametrize("workers", [1, 0], ids=["a Train worker", "local mode"])
def test_only_evaluations_that_improve_write_a_checkpoint(ray_session, encoder, tmp_path, workers):
    """``training.checkpoint_when: improved`` (the default): a learning rate too small to
    change a prediction makes every evaluation after the first a tie (not better), so only
    the first and the last (whose metrics the result carries) are written; training still
    runs all its steps. The same in local mode (``num_workers: 0``), where the loop keeps
    the checkpoints itself."""
    import json

    table = sf_id_table(24)
    config = small_config(
        num_workers=workers, eval_every=2, lr=1e-12, head_lr=1e-12, patience=10,
        keep_checkpoints=True, checkpoints_to_keep=10,
    )  # fmt: skip
    assert config.checkpoint_when == "improved"
    result = train_model(
        table.slice(0, 16), table.slice(16), TASKS, ModelConfig(encoder=encoder), config, tmp_path
    )
    assert result.steps == 6 and result.best_step == 2
    written = sorted(p for p in (tmp_path / "train").rglob("checkpoint_*") if p.is_dir())
    steps = sorted(json.loads((p / "loop.json").read_text())["step"] for p in written)
    assert steps == [2, 6]


def test_train_command_prints_json_scores(ray_session, encoder: str, tmp_path: Path, capsys):
    import json

    from mtal_ray.cli import main

    code = main(
        [
            "train",
            "--output",
            str(tmp_path),
            "--json",
            f"model.encoder={encoder}",
            "data.synthetic={n_train: 16, n_dev: 8, n_test: 8}",
            "training.num_workers=2",
            "training.batch_size=8",
            "training.max_steps=2",
            "training.eval_every=2",
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(summary["dev"]) == {"sf", "id"} and set(summary["test"]) == {"sf", "id"}
    assert summary["steps"] == 2
    assert (tmp_path / "best" / "model.pt").is_file()


def test_in_a_ray_worker_the_training_gets_the_threads_of_a_train_worker(
    ray_session,
):  # the module's shared head
    """Ray gives an actor or task of under 2 CPUs one torch thread; a training in such a
    process (the launcher's driver actor, a sweep trial) runs with the threads a Train worker
    of ``training.cpus_per_worker`` CPUs would get, and leaves the process's as they were."""
    import ray
    import torch

    from mtal_ray.training.trainer import worker_threads

    @ray.remote(num_cpus=0.01)
    def probe(cpus: float) -> tuple[int, int, int, int]:
        before = torch.get_num_threads()
        with worker_threads(TrainingConfig(num_workers=0, cpus_per_worker=cpus)) as threads:
            inside = torch.get_num_threads()
        return before, threads, inside if inside == threads else -1, torch.get_num_threads()

    assert ray.get(probe.remote(2.0)) == (1, 2, 2, 1)
    assert ray.get(probe.remote(0.5)) == (1, 1, 1, 1)
    # outside Ray workers (this test's own process) torch keeps its own choice
    mine = torch.get_num_threads()
    with worker_threads(TrainingConfig(num_workers=0, cpus_per_worker=2.0)) as threads:
        assert threads == mine == torch.get_num_threads()
