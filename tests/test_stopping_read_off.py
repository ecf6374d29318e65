"""benchmarks/stopping.py --read-off: where dev-plateau would stop each task, read off
finished runs without stopping (hand-worked dev histories; a tiny trial archive)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import stopping


def rows(dev: list[float | None], task: str = "sf") -> list[dict]:
    return [{"iteration": i, f"dev.{task}": d} for i, d in enumerate(dev)]


def test_fires_at_the_first_round_whose_gain_over_the_window_is_below_delta() -> None:
    history = rows([0.50, 0.60, 0.605, 0.606, 0.90])
    # window 1: gains 0.10 (it 1), 0.005 (it 2) < 0.01 -> stops at 2
    assert stopping.fire_iteration(history, "sf", 0.01, 1) == 2
    # window 2: gains 0.105 (it 2), 0.006 (it 3) < 0.01 -> stops at 3
    assert stopping.fire_iteration(history, "sf", 0.01, 2) == 3
    # δ = 0.005: 0.005 is not below 0.005 (it 2), 0.001 is (it 3)
    assert stopping.fire_iteration(history, "sf", 0.005, 1) == 3


def test_the_last_round_selects_nothing_so_a_plateau_there_stops_nothing() -> None:
    assert stopping.fire_iteration(rows([0.5, 0.6, 0.7, 0.8, 0.8]), "sf", 0.01, 1) is None
    assert stopping.fire_iteration(rows([0.5, 0.6, 0.7, 0.8, 0.8]), "id", 0.01, 1) is None


def test_rounds_without_a_dev_score_are_skipped_as_the_loop_skips_them() -> None:
    # dev scores 0.5, 0.7, 0.705 once the missing one is dropped: stops at iteration 3
    assert stopping.fire_iteration(rows([0.5, None, 0.7, 0.705, 0.9]), "sf", 0.01, 1) == 3


def write_trial(folder: Path, name: str, status: str, summary: dict) -> None:
    from mtal_ray.sweep.results import TrialRecord

    (folder / name).mkdir(parents=True)
    params = {"selection.method": "mt-avg", "seed": 0}
    record = TrialRecord(name, params, method="mt-avg", tasks=["sf", "id"], status=status)
    record.save(folder / name)
    (folder / name / "summary.json").write_text(json.dumps(summary))


def test_read_off_an_archive_writes_the_verdicts_and_keeps_the_file_s_other_entries(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = tmp_path / "validity_atis"
    dev = [
        {"iteration": i, "dev.sf": s, "dev.id": d}
        for i, (s, d) in enumerate([(0.5, 0.8), (0.6, 0.95), (0.7, 0.955), (0.8, 0.97), (0.9, 1)])
    ]
    write_trial(archive, "mt-avg_seed=0", "finished", {"rows": dev, "stopping": {}})
    stopped = {"rows": dev, "stopping": {"id": {"stopped_at": 2}}}
    write_trial(archive, "mt-avg_stop_seed=0", "finished", stopped)  # has stopping: left out
    write_trial(archive, "mt-r_seed=0", "failed", {"rows": dev, "stopping": {}})  # unfinished
    output = tmp_path / "stopping.json"
    output.write_text(json.dumps({"scenarios": {"atis": {"verdict": "kept"}}}))

    argv = ["--read-off", str(archive), "--deltas", "0.01", "--windows", "1", "2"]
    assert stopping.main([*argv, "--output", str(output)]) == 0

    saved = json.loads(output.read_text())
    assert saved["scenarios"] == {"atis": {"verdict": "kept"}}
    entry = saved["read_off"]["validity_atis"]
    assert list(entry) == ["mt-avg_seed=0"]
    # id: gains 0.15, 0.005 (< 0.01 at it 2); window 2: 0.155 (it 2), 0.02 (it 3)
    assert entry["mt-avg_seed=0"]["fires"] == {
        "delta=0.01,window=1": {"sf": None, "id": 2},
        "delta=0.01,window=2": {"sf": None, "id": None},
    }
    table = capsys.readouterr().out
    assert "| mt-avg_seed=0 | 5 | id@2 | – |" in table
    assert "| runs with no stop (0 % saved, same scores) | | 0 of 1 | 1 of 1 |" in table


def test_a_missing_folder_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.json"
    assert stopping.main(["--read-off", str(tmp_path / "nope"), "--output", str(out)]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("criterion", ["dev-plateau", "budget", "overall-uncertainty"])
def test_the_benchmark_s_rule_is_one_the_config_accepts(criterion) -> None:
    from mtal_ray.config import load_config

    args = stopping.argparse.Namespace(criterion=criterion, threshold=0.5, window=2, stop_set=None)
    rule = stopping.stopping_rule(args)
    assert ("window" in rule) == (criterion == "dev-plateau")
    config = load_config(None, [f"al.stopping={json.dumps(rule)}"])
    assert config.al.stopping[0].criterion == criterion
