"""TrainingConfig validation and the ``mtal-ray train`` error path (no Ray started)."""

from __future__ import annotations

import numpy as np
import pydantic
import pytest

from mtal_ray.cli import main
from mtal_ray.training.config import TrainingConfig
from mtal_ray.training.loop import epoch_batches


def test_defaults_follow_the_paper() -> None:
    cfg = TrainingConfig()
    assert (cfg.lr, cfg.weight_decay, cfg.batch_size, cfg.strategy) == (5e-5, 0.01, 32, "ddp")
    assert cfg.label_smoothing["dp"] == cfg.label_smoothing["ner"] == 0.2
    assert cfg.label_smoothing["sf"] == cfg.label_smoothing["id"] == 0.1


def test_partial_label_smoothing_overrides_only_named_tasks() -> None:
    cfg = TrainingConfig(label_smoothing={"ner": 0.0})
    assert cfg.label_smoothing["ner"] == 0.0 and cfg.label_smoothing["dp"] == 0.2


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("label_smoothing", {"dp": 1.0}, "label_smoothing.dp"),
        ("loss_weights", {"ner": -1.0}, "loss_weights.ner"),
        ("strategy", "fsdp", "strategy"),
        ("zero_stage", 4, "zero_stage"),
    ],
)
def test_bad_values_name_the_key(field: str, value: object, message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        TrainingConfig(**{field: value})


def test_micro_batch_splits_the_global_batch() -> None:
    assert TrainingConfig(batch_size=32, num_workers=2).micro_batch_size() == 16
    assert TrainingConfig(batch_size=1, num_workers=2).micro_batch_size() == 1


def test_epoch_batches_partition_rows_equally_across_workers() -> None:
    shards = [epoch_batches(10, r, 2, 2, seed=0, epoch=3) for r in range(2)]
    assert [len(s) for s in shards] == [3, 3]  # 5 rows each, micro batch 2
    rows = np.concatenate([np.concatenate(s) for s in shards])
    assert sorted(rows.tolist()) == list(range(10))
    # tiny sets: fewer rows than workers still gives every worker a batch
    assert all(len(epoch_batches(1, r, 2, 4, 0, 0)) == 1 for r in range(2))


def test_train_command_reports_bad_config_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "training.nope=1"]) == 2
    assert "training.nope" in capsys.readouterr().err


def test_progress_line_reports_step_loss_scores_and_best() -> None:
    from mtal_ray.training.loop import progress_line

    metrics = {
        "step": 200,
        "epoch": 1,
        "train_loss": 0.53125,
        "dev_gmean": 0.7,
        "best_dev_gmean": 0.72,
        "best_step": 100,
        "stopped": True,
        "dev_dp": 0.84,
        "dev_ner": 0.5833333,
    }
    assert progress_line(metrics, 800, ["dp", "ner"]) == (
        "train step 200/800 (epoch 1): loss 0.5312; dev dp 0.8400, ner 0.5833; "
        "geo-mean 0.7000 (best 0.7200 at step 100) - stopping"
    )


def test_epochs_budget_grows_with_the_labeled_set() -> None:
    from mtal_ray.training.config import steps_for_rows

    # ceil(10 × 90 / 16) = 57 and ceil(10 × 390 / 16) = 244: four times the rows, ~four
    # times the steps, so each sentence gets the same ten passes
    assert steps_for_rows(90, 16, 10.0) == 57
    assert steps_for_rows(390, 16, 10.0) == 244
    assert steps_for_rows(90, 16, 10.0, min_steps=100) == 100  # lower bound
    assert steps_for_rows(390, 16, 10.0, max_steps=200) == 200  # upper bound
    cfg = TrainingConfig(epochs=10, batch_size=16, max_steps=200, eval_every_epochs=2)
    small, large = cfg.for_rows(90), cfg.for_rows(390)
    assert (small.max_steps, small.eval_every) == (57, 12)  # ceil(2 × 90 / 16)
    assert (large.max_steps, large.eval_every) == (200, 49)
    assert small.epochs is None and small.for_rows(390) == small  # resolved once
    fixed = TrainingConfig(max_steps=60)  # default: the fixed budget, as before
    assert fixed.for_rows(90).max_steps == fixed.for_rows(390).max_steps == 60


def test_min_steps_above_max_steps_names_the_key() -> None:
    with pytest.raises(pydantic.ValidationError, match="min_steps"):
        TrainingConfig(epochs=1, min_steps=50, max_steps=10)


def test_checkpoint_selection_still_ranks_when_a_task_scores_zero() -> None:
    from mtal_ray.models.inference import geometric_mean, selection_score
    from mtal_ray.training.loop import TrainingProgress

    # NER + RE dev scores per evaluation (steps 20, 40, 60, 80); RE stays at 0 throughout
    history = [{"ner": 0.20, "re": 0.0}, {"ner": 0.25, "re": 0.0}, {"ner": 0.50, "re": 0.0}]
    history.append({"ner": 0.45, "re": 0.0})
    assert {geometric_mean(list(h.values())) for h in history} == {0.0}  # every tie
    # floored at 1e-3: sqrt(ner × 0.001) -> 0.01414, 0.01581, 0.02236, 0.02121
    assert round(selection_score([0.5, 0.0]), 5) == 0.02236
    progress = TrainingProgress()
    for step, scores in zip((20, 40, 60, 80), history, strict=True):
        progress.step = step
        progress.record(scores, floor=1e-3)
    assert (progress.best_step, progress.bad_evals) == (60, 1)  # step 60, NER twice step 20's
    assert progress.best_gmean == 0.0  # the reported metric stays the plain geometric mean

    # once RE scores, a small RE gain outranks a NER gain (as the geometric mean does), and
    # above the floor the criterion equals the geometric mean
    progress = TrainingProgress()
    for step, scores in enumerate([{"ner": 0.5, "re": 0.0}, {"ner": 0.3, "re": 0.05}], 1):
        progress.step = step
        progress.record(scores, floor=1e-3)
    assert progress.best_step == 2 and abs(progress.best_gmean - (0.3 * 0.05) ** 0.5) < 1e-12
    assert selection_score([0.3, 0.05]) == geometric_mean([0.3, 0.05])
    # floor 0 is the plain geometric mean: all-zero evaluations tie, the first is kept
    progress = TrainingProgress()
    for step, scores in enumerate(history, 1):
        progress.step = step
        progress.record(scores, floor=0.0)
    assert (progress.best_step, progress.bad_evals) == (1, 3)


def test_train_phases_partition_the_call_by_hand() -> None:
    """Driver marks at t=100, 101, 130, 133, 135; the worker began its imports at 102,
    finished them at 103.5, was ready at 110 and spent 9 s in steps, 3 in dev evaluations
    and 2 in checkpoints."""
    from mtal_ray.training.trainer import TRAIN_PHASES, train_phases

    worker = {
        "t_imports_started": 102.0,
        "t_imports_done": 103.5,
        "t_worker_ready": 110.0,
        "s_steps": 9.0,
        "s_eval": 3.0,
        "s_checkpoint": 2.0,
    }
    phases = train_phases(100.0, 101.0, 130.0, 133.0, 135.0, worker)
    assert phases == {
        "setup": 1.0,
        "start": 1.0,
        "imports": 1.5,
        "model_load": 6.5,
        "steps": 9.0,
        "dev_eval": 3.0,
        "checkpoint": 2.0,
        "teardown": 130.0 - 110.0 - 14.0,
        "export": 3.0,
        "final_eval": 2.0,
    }
    assert list(phases) == list(TRAIN_PHASES) and sum(phases.values()) == 35.0
    # a report without the worker's marks (an older worker) still partitions the call
    bare = train_phases(100.0, 101.0, 130.0, 133.0, 135.0, {})
    assert bare["start"] == bare["imports"] == bare["model_load"] == 0.0
    assert sum(bare.values()) == 35.0
    # a worker that had imported the code before the call: its imports count as none
    early = train_phases(100.0, 101.0, 130.0, 133.0, 135.0, {**worker, "t_imports_started": 50.0})
    assert early["start"] == 0.0 and early["imports"] == 2.5 and sum(early.values()) == 35.0
    # the workers' wall clock runs 1000 s ahead of the driver's clock: mapped back
    ahead = {k: v + 1000.0 if k.startswith("t_") else v for k, v in worker.items()}
    assert train_phases(100.0, 101.0, 130.0, 133.0, 135.0, ahead, clock_offset=1000.0) == phases
    # marks past the call's end (a wall-clock step) and in-training sums longer than the
    # time left: clamped and scaled, so the phases still add up to the call
    late = {**worker, "t_worker_ready": 125.0}
    squeezed = train_phases(100.0, 101.0, 130.0, 133.0, 135.0, late)
    assert squeezed["teardown"] == 0.0
    assert squeezed["steps"] == pytest.approx(5.0 * 9.0 / 14.0)
    assert sum(squeezed.values()) == pytest.approx(35.0)
    stepped = train_phases(100.0, 101.0, 130.0, 133.0, 135.0, {**worker, "t_worker_ready": 400.0})
    assert min(stepped.values()) >= 0.0 and sum(stepped.values()) == pytest.approx(35.0)


NESTED_ROW = (
    '{"id": "%s", "tokens": ["BERT", "fine", "tuning", "for", "NER"], "entities": ['
    '{"start": 0, "end": 3, "type": "Task"}, {"start": 0, "end": 1, "type": "Method"}, '
    '{"start": 4, "end": 5, "type": "Task"}], "relations": []}\n'
)


def test_train_reads_the_corpus_as_run_does(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    """``mtal-ray train`` honours ``data.overlapping_entities`` (and every data key ``run``
    reads): it loads the corpus through the run's own loader."""
    from mtal_ray.cli.training import _load_data
    from mtal_ray.config import load_config
    from mtal_ray.errors import ConfigError, MtalError

    for split in ("train", "dev"):
        (tmp_path / f"{split}.json").write_text(NESTED_ROW % f"{split}1")
    base = [f"data.path={tmp_path}", "data.format=jsonl", "data.tasks=[ner]"]
    strict = load_config(None, [*base, "data.test_split=null"])
    with pytest.raises(MtalError, match="entities 0 and 1 overlap"):
        _load_data(strict, tmp_path)
    lenient = load_config(
        None, [*base, "data.test_split=null", "data.overlapping_entities=keep-longest"]
    )
    tasks, train, dev, test = _load_data(lenient, tmp_path)
    assert tasks == ["ner"] and test is None
    assert train.column("ner.tags").to_pylist() == [["B-Task", "I-Task", "I-Task", "O", "B-Task"]]
    assert dev.num_rows == 1
    assert "keep-longest" in capsys.readouterr().err
    no_dev = load_config(
        None,
        [
            *base,
            "data.test_split=null",
            "data.dev_split=null",
            "data.overlapping_entities=keep-longest",
        ],
    )
    with pytest.raises(ConfigError, match="`mtal-ray train` evaluates on a dev split"):
        _load_data(no_dev, tmp_path)
