"""``training.num_workers: 0``: Ray Train's local mode, the training in the calling process.

The checkpoint bookkeeping the loop does itself (Ray Train keeps nothing in local mode) is
checked on hand-made folders; the training itself on the tiny random BERT, with no Ray
started at all.
"""

from __future__ import annotations

import json
from pathlib import Path

import pydantic
import pytest
from models_sample_rows import sf_id_table

from mtal_ray.models import ModelConfig
from mtal_ray.training import TrainingConfig, load_checkpoint, train_model
from mtal_ray.training.local_mode import (
    METRICS_FILE,
    checkpoints_to_prune,
    keep_checkpoint,
    reported_checkpoints,
    staging_dir,
)
from mtal_ray.training.trainer import TrainingFailedError

TASKS = ["sf", "id"]


def _entry(step: int, select: float) -> tuple[Path, dict[str, float]]:
    return Path(f"checkpoint_{step:06d}"), {"step": step, "dev_select": select}


def test_prune_keeps_the_best_by_dev_select_and_the_earlier_step_on_a_tie():
    entries = [_entry(2, 0.5), _entry(4, 0.7), _entry(6, 0.5), _entry(8, 0.6)]
    # ranked: 4 (0.7), 8 (0.6), 2 (0.5, earlier), 6 (0.5)
    assert checkpoints_to_prune(entries, 2) == [
        Path("checkpoint_000002"),
        Path("checkpoint_000006"),
    ]
    assert checkpoints_to_prune(entries, 3) == [Path("checkpoint_000006")]
    assert checkpoints_to_prune(entries, 4) == []
    assert checkpoints_to_prune(entries, 0) == []  # < 1: keep all
    nan = [_entry(2, float("nan")), _entry(4, 0.1)]
    assert checkpoints_to_prune(nan, 1) == [Path("checkpoint_000002")]


def _written(local: Path, step: int, content: bytes) -> Path:
    folder = staging_dir(local, step)
    (folder / "model.pt").write_bytes(content)
    return folder


def test_kept_checkpoints_round_trip_with_their_metrics_and_are_pruned(tmp_path: Path):
    local = tmp_path / "local"
    for step, select in ((2, 0.3), (4, 0.6), (6, 0.4)):
        written = _written(local, step, b"weights of step %d" % step)
        assert written.name.startswith(".")  # not a checkpoint's name while written
        kept = keep_checkpoint(written, {"step": step, "dev_select": select}, keep=2)
        assert kept == local / f"checkpoint_{step:06d}" and not written.exists()
    found = reported_checkpoints(local)
    assert [(p.name, m["step"]) for p, m in found] == [
        ("checkpoint_000004", 4),
        ("checkpoint_000006", 6),
    ]
    assert (found[0][0] / "model.pt").read_bytes() == b"weights of step 4"
    assert sorted(p.name for p in local.iterdir()) == ["checkpoint_000004", "checkpoint_000006"]


def test_an_incomplete_checkpoint_is_not_read_back(tmp_path: Path):
    local = tmp_path / "local"
    keep_checkpoint(_written(local, 2, b"w"), {"step": 2, "dev_select": 0.1}, keep=2)
    (local / "checkpoint_000004").mkdir()  # no metrics: cut short
    _written(local, 6, b"half")  # still being written
    bad = local / "checkpoint_000008"
    bad.mkdir()
    (bad / METRICS_FILE).write_text("{not json")
    assert [p.name for p, _ in reported_checkpoints(local)] == ["checkpoint_000002"]
    assert reported_checkpoints(tmp_path / "absent") == []
    assert staging_dir(local, 6).is_dir() and not any(staging_dir(local, 6).iterdir())


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [({"strategy": "deepspeed"}, "needs strategy ddp"), ({"use_gpu": True}, "use_gpu needs")],
)
def test_local_mode_refuses_what_it_cannot_do(overrides: dict, needle: str):
    with pytest.raises(pydantic.ValidationError, match=needle) as err:
        TrainingConfig(num_workers=0, **overrides)
    assert "num_workers: 0" in str(err.value)


def test_micro_batch_in_local_mode_is_the_whole_batch():
    assert TrainingConfig(num_workers=0, batch_size=8).micro_batch_size() == 8


def test_trains_in_this_process_without_ray_and_keeps_the_best(encoder: str, tmp_path: Path):
    import ray

    if ray.is_initialized():  # left connected by an earlier module: start from no Ray
        ray.shutdown()
    table = sf_id_table(24)
    stale = tmp_path / "train" / "local" / "checkpoint_000099"  # a killed attempt's
    stale.mkdir(parents=True)
    (stale / METRICS_FILE).write_text(json.dumps({"step": 99, "dev_select": 99.0}))
    config = TrainingConfig(
        num_workers=0, batch_size=8, eval_every=2, max_steps=8, lr=1e-3, patience=10,
        checkpoint_when="every-eval", checkpoints_to_keep=2, keep_checkpoints=True,
    )  # fmt: skip
    result = train_model(
        table.slice(0, 16), table.slice(16), TASKS, ModelConfig(encoder=encoder), config,
        tmp_path, test=table.slice(16),
    )  # fmt: skip
    assert not ray.is_initialized()  # local mode starts no Ray
    assert result.steps == 8 and result.resumed_from_step == 0
    # no controller, no worker: nothing to start or import
    assert result.phases["start"] == 0.0 and result.phases["imports"] == 0.0
    kept = reported_checkpoints(tmp_path / "train" / "local")
    assert len(kept) == 2 and all(m["step"] <= 8 for _, m in kept)  # the stale one is gone
    # the best evaluation (the earliest of equals, as the loop records it) is kept and is the
    # one exported
    assert result.best_step == max(m["best_step"] for _, m in kept)
    assert result.best_step in {m["step"] for _, m in kept}
    exported = load_checkpoint(result.checkpoint_dir)
    assert exported.info.step == result.best_step
    assert result.dev_scores == pytest.approx(exported.info.dev_scores)
    assert result.test_scores is not None and set(result.test_scores) == set(TASKS)


def test_a_failing_training_is_a_training_failed_error(encoder: str, tmp_path: Path):
    table = sf_id_table(24)
    config = TrainingConfig(num_workers=0, batch_size=8, eval_every=2, max_steps=4, lr=1e30)
    with pytest.raises(TrainingFailedError, match=r"training in .* failed: FloatingPointError"):
        train_model(
            table.slice(0, 16), table.slice(16), TASKS, ModelConfig(encoder=encoder), config,
            tmp_path,
        )  # fmt: skip
    assert not (tmp_path / "best").exists()  # nothing exported from a failed training
