"""benchmarks/trial_archive.py: finished trials carried across machines (real files, no Ray)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from mtal_ray.sweep.results import TrialRecord, load_trial

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import trial_archive

SWEEP = {
    "seed": 0,
    "data": {"path": "/somewhere/runs/data/atis_pool2000", "format": "slu", "tasks": ["sf", "id"]},
    "training": {"lr": 5e-5, "cpus_per_worker": 0.99},
    "tracking": {"experiment": "validity_atis"},
    "sweep": {"name": "validity_atis", "grid": {"selection.method": ["mt-r"], "seed": [0, 1]}},
}
ROWS = [
    {"iteration": 0, "labeled": 40, "test.sf": 0.61, "test.id": 0.80},
    {"iteration": 1, "labeled": 80, "test.sf": 0.70, "test.id": 0.88},
]


def make_trial(sweep_dir: Path, seed: int, status: str, *, lr: float = 5e-5) -> Path:
    """A trial folder as the driver and run_trial leave it (config resolved from SWEEP)."""
    params = {"selection.method": "mt-r", "seed": seed}
    name = f"mt-r_seed={seed}"
    trial_dir = sweep_dir / "trials" / name
    TrialRecord(name=name, params=params, method="mt-r", seed=seed, status=status).save(trial_dir)
    sweep = json.loads(json.dumps(SWEEP))
    sweep["training"]["lr"] = lr
    config = trial_archive.resolved_config(sweep, params)
    # where it ran differs from machine to machine and must not matter
    config["data"]["path"] = "/other/machine/runs/data/atis_pool2000"
    config["tracking"]["tracking_uri"] = "sqlite:////other/machine/mlruns.db"
    config["training"]["cpus_per_worker"] = 1.5
    (trial_dir / "config.json").write_text(json.dumps(config))
    (trial_dir / "state.json").write_text(json.dumps({"labeled": {"sf": ["3", "7"]}}))
    if status == "finished":
        summary = {"status": "finished", "rows": ROWS, "stopping": {}}
        (trial_dir / "summary.json").write_text(json.dumps(summary))
    first = trial_dir / "rounds" / "round_0" / "selection.json"
    first.parent.mkdir(parents=True)
    first.write_text(json.dumps({"ids": ["3", "7"]}))
    (trial_dir / "rounds" / "round_0" / "model.bin").write_bytes(b"\0" * 1000)  # not archived
    return trial_dir


def test_finished_trials_are_saved_once_with_their_small_files_only(tmp_path: Path) -> None:
    sweep_dir, archive = tmp_path / "sweep", tmp_path / "archive"
    make_trial(sweep_dir, 0, "finished")
    make_trial(sweep_dir, 1, "running")

    assert trial_archive.save(sweep_dir, archive) == ["mt-r_seed=0"]
    kept = sorted(str(p.relative_to(archive)) for p in archive.rglob("*") if p.is_file())
    assert kept == sorted(f"mt-r_seed=0/{name}" for name in trial_archive.FILES)
    assert trial_archive.save(sweep_dir, archive) == []  # already there
    assert not list(archive.glob("*.partial"))


def test_every_rounds_selection_is_kept_and_added_to_trials_archived_without(tmp_path):
    sweep_dir, archive = tmp_path / "sweep", tmp_path / "archive"
    trial_dir = make_trial(sweep_dir, 0, "finished")
    trial_archive.save(sweep_dir, archive)  # archived with round 0's selection only
    later = trial_dir / "rounds" / "round_1" / "selection.json"
    later.parent.mkdir(parents=True)
    later.write_text(json.dumps({"ids": ["5"]}))

    assert trial_archive.save(sweep_dir, archive) == []  # not archived again ...
    kept = archive / "mt-r_seed=0" / "rounds" / "round_1" / "selection.json"
    assert json.loads(kept.read_text()) == {"ids": ["5"]}  # ... but completed

    fresh_sweep, fresh_archive = tmp_path / "sweep2", tmp_path / "archive2"
    make_trial(fresh_sweep, 0, "finished")
    second = fresh_sweep / "trials" / "mt-r_seed=0" / "rounds" / "round_1" / "selection.json"
    second.parent.mkdir(parents=True)
    second.write_text(json.dumps({"ids": ["9"]}))
    assert trial_archive.save(fresh_sweep, fresh_archive) == ["mt-r_seed=0"]
    assert (fresh_archive / "mt-r_seed=0" / "rounds" / "round_1" / "selection.json").is_file()


def test_a_restored_trial_is_finished_for_the_sweep_and_keeps_its_rows(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    make_trial(tmp_path / "old", 0, "finished")
    trial_archive.save(tmp_path / "old", archive)

    fresh = tmp_path / "fresh"
    restored, skipped = trial_archive.restore(archive, fresh, SWEEP)

    assert (restored, skipped) == (["mt-r_seed=0"], [])
    trial = load_trial(fresh / "trials" / "mt-r_seed=0")
    # what run_trial checks before returning at once instead of running the trial again
    assert trial is not None and trial.record.status == "finished"
    assert trial.rows == ROWS
    assert trial.first_selection == ["3", "7"]
    # a second restore leaves the sweep's own folder alone
    assert trial_archive.restore(archive, fresh, SWEEP) == ([], [])


def test_settings_added_to_the_code_after_a_trial_ran_do_not_block_its_restore(tmp_path):
    archive = tmp_path / "archive"
    trial_dir = make_trial(tmp_path / "old", 0, "finished")
    config = json.loads((trial_dir / "config.json").read_text())
    del config["training"]["checkpoint_when"]  # as written before that key existed
    (trial_dir / "config.json").write_text(json.dumps(config))
    trial_archive.save(tmp_path / "old", archive)

    assert trial_archive.restore(archive, tmp_path / "fresh", SWEEP) == (["mt-r_seed=0"], [])


def test_a_trial_that_ran_under_other_settings_is_not_restored(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    make_trial(tmp_path / "old", 0, "finished", lr=1e-4)
    trial_archive.save(tmp_path / "old", archive)

    restored, skipped = trial_archive.restore(archive, tmp_path / "fresh", SWEEP)

    assert restored == []
    assert skipped == ["mt-r_seed=0: training.lr"]
    assert not (tmp_path / "fresh" / "trials" / "mt-r_seed=0").exists()


@pytest.mark.parametrize(
    ("a", "b", "keys"),
    [
        ({"x": 1, "s": {"y": 2}}, {"x": 1, "s": {"y": 2}}, []),
        ({"x": 1, "s": {"y": 2}}, {"x": 1, "s": {"y": 3, "z": 0}}, ["s.y", "s.z"]),
        ({"x": [1, 2]}, {"x": [2, 1]}, ["x"]),
    ],
)
def test_differences_name_the_dotted_keys_that_differ(a: dict, b: dict, keys: list) -> None:
    assert trial_archive.differences(a, b) == keys


def test_posthoc_results_round_trip(tmp_path: Path) -> None:
    cache = {"mt-avg_seed=0:oe": {"sf": 0.012, "id": 0.003}}
    trial_archive.save_posthoc(tmp_path / "a", cache)
    assert trial_archive.load_posthoc(tmp_path / "a") == cache
    assert trial_archive.load_posthoc(tmp_path / "missing") == {}


def test_trials_are_archived_while_the_sweep_still_runs(tmp_path: Path) -> None:
    import subprocess

    import validity

    sweep_dir, archive = tmp_path / "sweep", tmp_path / "archive"
    make_trial(sweep_dir, 0, "finished")
    make_trial(sweep_dir, 1, "running")
    seen: list[list[str]] = []
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5)"])

    def tick() -> None:
        seen.append(validity.archive_finished("atis", sweep_dir, archive))
        assert process.poll() is None  # archived before the sweep ended

    assert validity.wait_ticking(process, 0.3, tick) == 0
    assert seen and seen[0] == ["mt-r_seed=0"] and all(s == [] for s in seen[1:])
    assert (archive / "mt-r_seed=0" / "trial.json").exists()


def test_an_interrupted_wait_does_not_leave_the_sweep_running(tmp_path: Path) -> None:
    import subprocess

    import validity

    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])

    def interrupt() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        validity.wait_ticking(process, 0.2, interrupt)
    assert process.poll() is not None


def test_an_archive_that_cannot_be_written_does_not_end_the_sweep(tmp_path: Path, capsys):
    import validity

    sweep_dir = tmp_path / "sweep"
    make_trial(sweep_dir, 0, "finished")
    blocked = tmp_path / "archive"
    blocked.write_text("a file where the archive folder should be")
    validity.archiving("atis", sweep_dir, blocked)()  # no exception
    assert "[atis] archiving failed (tried again later)" in capsys.readouterr().out
    blocked.unlink()
    validity.archiving("atis", sweep_dir, blocked)()
    assert (blocked / "mt-r_seed=0" / "trial.json").exists()


@pytest.mark.skipif(not (Path(__file__).resolve().parents[2] / "shared" / "data" / "atis").exists(),
                    reason="needs ../shared/data/atis")  # fmt: skip
def test_the_plan_lists_archived_and_missing_trials_and_their_time(tmp_path: Path, capsys):
    import validity

    argv = ["--scenarios", "atis", "--pool-size", "60", "--seeds", "0", "1", "--methods",
            "mt-r", "--comparisons", "--work-dir", str(tmp_path / "work"),
            "--output", str(tmp_path / "results" / "v.json"), "--concurrent", "2", "--plan"]  # fmt: skip
    args = validity.parse_args(argv)
    work = Path(args.work_dir)
    corpus = validity.pool_corpus(validity.SCENARIOS["atis"], 60, work)
    config = validity.sweep_config("validity_atis", validity.SCENARIOS["atis"], corpus, args)
    archive = tmp_path / "results" / "trials" / "v" / "validity_atis"
    for seed, lr in ((0, None), (1, 1e-3)):  # seed 1 ran with another learning rate
        params = {"selection.method": "mt-r", "seed": seed}
        name = f"mt-r_seed={seed}"
        TrialRecord(name=name, params=params, status="finished", seconds=1200.0).save(
            archive / name
        )
        resolved = trial_archive.resolved_config(config, params)
        if lr is not None:
            resolved["training"]["lr"] = lr
        (archive / name / "config.json").write_text(json.dumps(resolved))

    assert validity.main(argv) == 0
    out = capsys.readouterr().out
    assert "[atis] 2 trials: 1 archived, 1 to run (~0.3 h one at a time at the archived " in out
    assert "median of 20 min per trial; ~0.2 h 2 at once)" in out
    assert "  to run: mt-r_seed=1 (archived under other settings: training.lr)" in out
    assert not (work / "sweeps").exists()  # nothing ran
