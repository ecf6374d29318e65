"""Sweep config and search space: grid expansion, trial names, trial configs, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtal_ray.config import ExperimentConfig, load_config
from mtal_ray.errors import ConfigError
from mtal_ray.sweep.config import SweepConfig
from mtal_ray.sweep.space import (
    grid_points,
    space_digest,
    trial_name,
    trial_params,
    trial_raw_config,
    tune_param_space,
)
from mtal_ray.sweep.tuner import planned_trials, sweep_directory, trial_concurrency

DATASETS = {
    "atis": {"data.path": "../shared/data/atis", "data.format": "slu"},
    "synthetic": {"data.path": "synthetic", "data.initial_count": 20},
}


def test_grid_is_the_cartesian_product_with_dataset_first():
    sweep = SweepConfig(
        grid={"selection.method": ["mt-r", "mt-avg"], "seed": [0, 1, 2]}, datasets=DATASETS
    )
    points = grid_points(sweep)
    assert len(points) == 2 * 2 * 3
    assert points[0] == {"dataset": "atis", "selection.method": "mt-r", "seed": 0}
    assert points[-1] == {"dataset": "synthetic", "selection.method": "mt-avg", "seed": 2}
    assert len({tuple(sorted(p.items())) for p in points}) == 12


def test_trial_names_are_readable_deterministic_and_unique():
    params = {"seed": 1, "selection.beta": 0.5, "dataset": "atis", "selection.method": "mt-avg"}
    assert trial_name(params) == "atis_mt-avg_beta=0.5_seed=1"
    assert trial_name(dict(reversed(params.items()))) == trial_name(params)
    assert trial_name({"training.lr": 1e-05, "seed": 0}) == "lr=1e-05_seed=0"
    assert trial_name({"data.tasks": ["sf", "id"]}) == "tasks=sf-id"
    a = trial_name({"training.lr": 1.23456e-5}, {"training.lr"})
    b = trial_name({"training.lr": 1.23457e-5}, {"training.lr"})
    assert a.startswith("lr=1.23e-05_") and a != b  # rounded for reading, digest for identity


def test_nested_keys_from_cli_overrides_are_flattened():
    cfg = load_config(
        None,
        [
            "sweep.grid.selection.method=[mt-r, mt-avg]",
            "sweep.random.selection.beta={uniform: [0.0, 1.0]}",
        ],
    )
    assert cfg.sweep.grid == {"selection.method": ["mt-r", "mt-avg"]}
    assert cfg.sweep.random["selection.beta"].kind == "uniform"
    assert cfg.sweep.random["selection.beta"].args == [0.0, 1.0]


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("sweep.grid.seed=[]", "sweep.grid: Value error, seed: a grid dimension needs at least"),
        ("sweep.grid.seed=[1, 1]", "seed: repeated values"),
        ("sweep.random.seed={uniform: [2, 1]}", "low must be below high"),
        ("sweep.random.seed={uniform: [1]}", "uniform takes 2 numbers"),
        ("sweep.random.seed={gauss: [0, 1]}", "sweep.random.seed.gauss: unknown key"),
        ("sweep.trial_cpus=0", "sweep.trial_cpus: Input should be greater than 0"),
        ("sweep.name=a/b", "sweep.name: String should match pattern"),
        ("sweep.grid.sweep.dir=[a]", "a sweep cannot sweep its own section"),
    ],
)
def test_bad_sweep_sections_name_the_key(override, needle):
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    assert needle in str(info.value)


def test_trial_config_applies_dataset_then_parameters():
    base = {"seed": 0, "data": {"path": "x", "limit_train": 50}, "sweep": {"grid": {}}}
    raw = trial_raw_config(
        base, {"dataset": "synthetic", "data.initial_count": 30, "seed": 2}, DATASETS
    )
    assert "sweep" not in raw and raw["seed"] == 2
    assert raw["data"] == {"path": "synthetic", "limit_train": 50, "initial_count": 30}
    assert base["data"] == {"path": "x", "limit_train": 50}  # the base is not modified
    with pytest.raises(ConfigError, match="no dataset named 'snips'"):
        trial_raw_config(base, {"dataset": "snips"}, DATASETS)


def test_planned_trials_validate_every_trial_config():
    raw = {"data": {"path": "synthetic"}}
    config = ExperimentConfig.model_validate(
        {**raw, "sweep": {"grid": {"data.limit_train": [100, 1], "seed": [0]}}}
    )
    with pytest.raises(ConfigError) as info:
        planned_trials(config, raw)
    message = str(info.value)
    assert message.startswith("sweep trial limit_train=1_seed=0: data.limit_train")
    ok = ExperimentConfig.model_validate(
        {**raw, "sweep": {"grid": {"seed": [0, 1]}, "datasets": DATASETS}}
    )
    assert planned_trials(ok, raw) == [
        "atis_seed=0", "atis_seed=1", "synthetic_seed=0", "synthetic_seed=1",
    ]  # fmt: skip
    unknown = ExperimentConfig.model_validate({**raw, "sweep": {"grid": {"data.nope": [1]}}})
    with pytest.raises(ConfigError, match=r"data\.nope: unknown key"):
        planned_trials(unknown, raw)


def test_planned_trials_refuse_human_annotation_and_name_collisions():
    raw = {"annotation": {"mode": "human"}}
    config = ExperimentConfig.model_validate({**raw, "sweep": {"grid": {"seed": [0]}}})
    with pytest.raises(ConfigError, match="a sweep needs the oracle"):
        planned_trials(config, raw)
    clash = ExperimentConfig.model_validate({"sweep": {"grid": {"data.path": ["a/b", "a-b"]}}})
    with pytest.raises(ConfigError, match="same trial name: path=a-b"):
        planned_trials(clash, {})


def test_space_digest_and_tune_space():
    from ray import tune

    a = SweepConfig(grid={"seed": [0, 1]}, random={"training.lr": {"loguniform": [1e-5, 1e-3]}})
    b = SweepConfig(grid={"seed": [0, 1, 2]}, random={"training.lr": {"loguniform": [1e-5, 1e-3]}})
    assert space_digest(a) != space_digest(b)
    assert space_digest(a) == space_digest(a.model_copy(update={"max_concurrent_trials": 4}))
    space = tune_param_space(a)
    assert space["grid"] == {"grid_search": [{"seed": 0}, {"seed": 1}]}
    assert isinstance(space["training.lr"], tune.search.sample.Float)
    assert trial_params({"grid": {"seed": 1}, "training.lr": 2e-5}) == {
        "seed": 1,
        "training.lr": 2e-5,
    }


def test_a_list_of_grids_runs_their_union_once_per_point():
    cfg = load_config(
        None,
        [
            "sweep.grid=[{selection.method: [mt-avg, mt-par], selection.beta: [0.5, 1.0],"
            " selection.task: [id], seed: [0]}, {selection.method: [mt-r], seed: [0]},"
            " {selection.method: [mt-r], seed: [0]}]"
        ],
    )
    points = grid_points(cfg.sweep)
    assert len(points) == 2 * 2 + 1
    assert points[-1] == {"selection.method": "mt-r", "seed": 0}
    assert cfg.sweep.grid_keys == {"selection.method", "selection.beta", "selection.task", "seed"}
    assert planned_trials(cfg, {})[-1] == "mt-r_seed=0"


def test_a_method_that_takes_no_beta_is_refused_before_training():
    cfg = load_config(
        None,
        [
            "sweep.grid.selection.method=[mt-avg, mt-r]",
            "sweep.grid.selection.beta=[0.5]",
        ],
    )
    with pytest.raises(ConfigError, match=r"sweep trial mt-r_beta=0\.5: selection: method mt-r"):
        planned_trials(cfg, {"selection": {"task": "id"}})


def test_sweep_directory_defaults_to_config_name(tmp_path: Path):
    sweep = SweepConfig(dir=str(tmp_path))
    assert sweep_directory(sweep, Path("configs/sweep_atis.yaml")) == tmp_path / "sweep_atis"
    named = SweepConfig(dir=str(tmp_path), name="study1")
    assert sweep_directory(named, Path("x.yaml")) == tmp_path / "study1"
    assert sweep_directory(named, Path("x.yaml"), str(tmp_path / "d")) == tmp_path / "d"


def _trial(workers: int, cpus_per_worker: float, actors: int = 1, cpus_per_actor: float = 1.0):
    return ExperimentConfig.model_validate(
        {
            "training": {"num_workers": workers, "cpus_per_worker": cpus_per_worker},
            "scoring": {"concurrency": actors, "cpus_per_actor": cpus_per_actor},
        }
    )


def test_concurrency_fits_nested_workers_next_to_the_trial_actors():
    sweep = SweepConfig()
    # 2 cores, 1 Train worker of 1 CPU per trial: two trials would need 2 x 1.01 > 2, so
    # one at a time (issue 20: the second trial's worker group timed out waiting).
    assert trial_concurrency(sweep, [_trial(1, 1.0)], 2.0) == 1
    # 0.99 CPU per worker: 2 x (0.99 + 0.01) = 2 fits, two trials at once.
    assert trial_concurrency(sweep, [_trial(1, 0.99, cpus_per_actor=0.99)], 2.0) == 2
    # 2 cores, 2 workers x 0.99: one trial at a time (1.98 + 0.01 <= 2).
    assert trial_concurrency(sweep, [_trial(2, 0.99)], 2.0) == 1
    # A big cluster scales out: 64 CPUs / (4 + 0.01) per trial.
    assert trial_concurrency(sweep, [_trial(4, 1.0), _trial(2, 1.0)], 64.0) == 15
    # Training in the trial's own actor (num_workers 0) uses the CPU a worker would get.
    assert trial_concurrency(sweep, [_trial(0, 0.99, cpus_per_actor=0.5)], 2.0) == 2
    assert trial_concurrency(sweep, [_trial(0, 1.0, cpus_per_actor=0.5)], 2.0) == 1
    # Scoring actors count too.
    assert trial_concurrency(sweep, [_trial(1, 1.0, actors=4)], 16.0) == 3
    assert trial_concurrency(SweepConfig(max_concurrent_trials=3), [_trial(1, 1.0)], 2.0) == 3
    # never more than the sweep has trials, whatever the machine (the Tune state's name)
    assert trial_concurrency(sweep, [_trial(1, 0.99)], 16.0, trials=3) == 3
    assert trial_concurrency(sweep, [_trial(1, 0.99, cpus_per_actor=0.99)], 2.0, trials=3) == 2
    assert trial_concurrency(SweepConfig(max_concurrent_trials=8), [_trial(1, 1.0)], 64.0, 5) == 5


def test_a_sweep_whose_train_workers_could_never_start_is_refused():
    # 2 workers x 1 CPU fill a 2-core machine: the trial actor's 0.01 CPU would starve them.
    with pytest.raises(ConfigError) as info:
        trial_concurrency(SweepConfig(), [_trial(2, 1.0)], 2.0)
    message = str(info.value)
    assert "reserve 2 CPUs" in message and "cluster's 2 CPUs" in message
    assert "training.cpus_per_worker (e.g. 0.99)" in message
    with pytest.raises(ConfigError):
        trial_concurrency(SweepConfig(max_concurrent_trials=200), [_trial(1, 1.0)], 2.0)


def test_beta_without_its_task_is_refused_before_training():
    cfg = load_config(None, ["sweep.grid.selection.beta=[0.5]"])
    with pytest.raises(ConfigError, match=r"selection\.beta needs selection\.task"):
        planned_trials(cfg, {})


def test_a_trial_that_fails_before_its_run_exists_logs_its_params_under_their_own_keys(
    tmp_path,
):
    """The fallback MLflow run of a trial whose config does not validate carries the swept
    parameters under the same keys as every other trial's run (``model.encoder``, not
    ``params.model.encoder``), so a sweep's runs can be compared by them."""
    from mlflow.tracking import MlflowClient

    from mtal_ray.config import ExperimentConfig
    from mtal_ray.errors import ConfigError
    from mtal_ray.mlflow_tracking import MlflowTarget
    from mtal_ray.sweep.trial import TrialContext, run_trial

    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    target = MlflowTarget(uri, "fails", (tmp_path / "art").as_uri())
    context = TrialContext(
        sweep_name="s", sweep_dir=str(tmp_path / "sweep"), base_raw={"seed": 0},
        datasets={}, base_dir=str(tmp_path), target=target, parent_run_id=None,
        config_model=ExperimentConfig,
    )  # fmt: skip
    with pytest.raises(ConfigError):
        run_trial({"training.lr": -1.0, "seed": 0}, context)
    (run,) = MlflowClient(uri).search_runs([target.experiment_id()])
    assert run.info.status == "FAILED"
    assert run.data.params["training.lr"] == "-1.0" and run.data.params["seed"] == "0"


def test_another_limit_of_trials_at_once_starts_a_new_tune_experiment(tmp_path: Path):
    """Tune restores an experiment with the limit it was created with, so the limit is in
    the experiment's name and a changed one (or a directory from before) starts anew."""
    from mtal_ray.sweep.tuner import tune_experiment_dir

    assert tune_experiment_dir(tmp_path, "0123abcd", 2) == (tmp_path / "tune-0123abcd-c2", None)
    (tmp_path / "tune-0123abcd").mkdir()  # from before the limit was in the name
    (tmp_path / "tune-0123abcdef-c2").mkdir()  # another space's (longer digest): not this one
    path, note = tune_experiment_dir(tmp_path, "0123abcd", 2)
    assert path == tmp_path / "tune-0123abcd-c2"
    assert note is not None and note.startswith("tune-0123abcd: this sweep's Tune state")
    assert "running at most 2 now in a new experiment, tune-0123abcd-c2" in note
    path.mkdir()  # created by that run: the next run with the same limit restores it
    assert tune_experiment_dir(tmp_path, "0123abcd", 2) == (path, None)
    path, note = tune_experiment_dir(tmp_path, "0123abcd", 1)
    assert path == tmp_path / "tune-0123abcd-c1"
    assert note is not None and note.startswith("tune-0123abcd, tune-0123abcd-c2:")


@pytest.mark.parametrize("retry", [False, True])
def test_a_failed_trial_runs_again_only_with_retry_failed(tmp_path, retry: bool):
    """Tune's own retries (same ``mtal-ray sweep`` invocation) always run the trial again;
    in a later invocation (a new Tune experiment starts every trial again) a trial
    recorded as failed fails at once, untouched, unless ``sweep.retry_failed``."""
    from dataclasses import replace

    from mtal_ray.config import ExperimentConfig
    from mtal_ray.mlflow_tracking import MlflowTarget
    from mtal_ray.sweep.results import TrialRecord
    from mtal_ray.sweep.trial import TrialContext, TrialFailedBefore, run_trial

    target = MlflowTarget(f"sqlite:///{tmp_path / 'mlruns.db'}", "f", (tmp_path / "a").as_uri())
    context = TrialContext(
        sweep_name="s", sweep_dir=str(tmp_path / "sweep"), base_raw={"seed": 0},
        datasets={}, base_dir=str(tmp_path), target=target, parent_run_id=None,
        config_model=ExperimentConfig, retry_failed=retry,
    )  # fmt: skip
    params = {"training.lr": -1.0, "seed": 0}
    with pytest.raises(ConfigError):
        run_trial(params, context)  # the first attempt: recorded as failed
    (trial_dir,) = (tmp_path / "sweep" / "trials").iterdir()
    assert TrialRecord.load(trial_dir).attempts == 1  # type: ignore[union-attr]
    with pytest.raises(ConfigError):  # Tune retrying it in the same invocation
        run_trial(params, context)
    assert TrialRecord.load(trial_dir).attempts == 2  # type: ignore[union-attr]
    later = replace(context, run_id="a-later-invocation")
    assert later.run_id != context.run_id
    if retry:
        with pytest.raises(ConfigError):
            run_trial(params, later)
        assert TrialRecord.load(trial_dir).attempts == 3  # type: ignore[union-attr]
    else:
        with pytest.raises(TrialFailedBefore, match=r"failed in an earlier run and sweep\.retry"):
            run_trial(params, later)
        record = TrialRecord.load(trial_dir)
        assert record is not None and (record.attempts, record.status) == (2, "failed")


def test_a_trials_wall_time_is_saved_after_every_step(tmp_path: Path):
    """An attempt killed mid-round (a lost machine) still counts up to its last step."""
    from mtal_ray.driver.callbacks import StepReport
    from mtal_ray.driver.state import Step
    from mtal_ray.sweep.results import TrialRecord
    from mtal_ray.sweep.trial import TrialCallback

    record = TrialRecord(name="t", params={}, seconds=100.0)
    clock = iter([112.5, 130.0])
    observer = TrialCallback(record, tmp_path, None, lambda: next(clock))
    observer.on_step_end(None, StepReport(Step.SCORE, 0))  # type: ignore[arg-type]
    assert TrialRecord.load(tmp_path).seconds == 112.5  # type: ignore[union-attr]
    observer.on_step_end(None, StepReport(Step.SELECT, 0))  # type: ignore[arg-type]
    assert TrialRecord.load(tmp_path).seconds == 130.0  # type: ignore[union-attr]
