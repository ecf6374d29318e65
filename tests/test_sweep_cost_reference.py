"""The report's comparison with MT-R at equal annotation cost (hand-made trial folders,
hand-worked answers, no Ray)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mtal_ray.sweep.cost_reference import (
    compare_at_equal_cost,
    cost_curve,
    final_at_common_cost,
    paired_at_cost,
)
from mtal_ray.sweep.report import write_report
from mtal_ray.sweep.results import TrialRecord, load_trials


def trial(sweep: Path, method: str, seed: int, scores: list[float], costs: list) -> None:
    """A finished single-task trial: ``scores`` (test SF) at 3 iterations; ``costs``: each
    round's ``cost_annotated`` (the last row's is never read: no selection after it)."""
    name = f"{method}_{seed}"
    folder = sweep / "trials" / name
    folder.mkdir(parents=True)
    TrialRecord(
        name=name, params={"selection.method": method, "seed": seed}, method=method,
        seed=seed, status="finished", attempts=1, tasks=["sf"],
    ).save(folder)  # fmt: skip
    rows = [
        {"iteration": i, "labeled": 10 * (i + 1), "test.sf": s, "dev.sf": s, "cost": 0.0,
         "cost_annotated": c}
        for i, (s, c) in enumerate(zip(scores, costs, strict=True))
    ]  # fmt: skip
    (folder / "summary.json").write_text(json.dumps({"rows": rows, "status": "finished"}))


def test_the_curve_puts_each_score_at_the_cost_spent_before_its_training(tmp_path):
    trial(tmp_path, "mt-avg", 0, [0.4, 0.6, 0.7], [5.0, 10.0, None])
    (loaded,) = load_trials(tmp_path)
    assert cost_curve(loaded, "test") == ([0.0, 5.0, 15.0], [0.4, 0.6, 0.7])
    trial(tmp_path, "mt-avg", 1, [0.4, 0.6, 0.7], [5.0, None, None])  # a run from before
    assert cost_curve(load_trials(tmp_path)[1], "test") is None


def test_random_is_read_at_the_methods_cost_and_never_extrapolated():
    random = ([0.0, 10.0, 20.0], [0.4, 0.6, 0.8])
    # final cost 15: random stands at 0.7 there
    final, area, ratio = paired_at_cost(([0.0, 5.0, 15.0], [0.4, 0.6, 0.75]), random)
    assert final == pytest.approx(0.05) and ratio == pytest.approx(0.75)
    # areas over [0, 15], normalised by 15: method (5·0.5 + 10·0.675)/15, random
    # 0.4→0.6 over [0, 10] then 0.6→0.7 over [10, 15]: (10·0.5 + 5·0.65)/15
    assert area == pytest.approx((5 * 0.5 + 10 * 0.675 - 10 * 0.5 - 5 * 0.65) / 15)
    assert paired_at_cost(([0.0, 30.0], [0.4, 0.9]), random)[0] is None  # beyond random


def test_the_report_shows_the_gain_at_equal_cost_over_seeds(tmp_path):
    for seed in (0, 1):
        trial(tmp_path, "mt-r", seed, [0.4, 0.6, 0.8], [10.0, 10.0, None])
    trial(tmp_path, "mt-avg", 0, [0.4, 0.6, 0.75], [5.0, 10.0, None])  # +0.05 at cost 15
    trial(tmp_path, "mt-avg", 1, [0.4, 0.5, 0.8], [10.0, 10.0, None])  # −0.00 at cost 20
    comparison = compare_at_equal_cost(load_trials(tmp_path))
    (gain,) = comparison.gains[""].values()
    assert gain.final.mean == pytest.approx(0.025) and (gain.final.wins, gain.final.losses) == (
        1,
        0,
    )
    assert gain.cost_ratio == pytest.approx((0.75 + 1.0) / 2)
    assert comparison.without_cost == []

    write_report(tmp_path, "test")
    report = (tmp_path / "report.md").read_text()
    assert "## Gain over random selection (MT-R) at equal annotation cost" in report
    assert "| mt-avg | 0.875× | +2.50 [" in report


def test_a_sweep_whose_runs_recorded_no_annotated_cost_has_no_such_section(tmp_path):
    trial(tmp_path, "mt-r", 0, [0.4, 0.6, 0.8], [None, None, None])
    trial(tmp_path, "mt-avg", 0, [0.4, 0.6, 0.75], [None, None, None])
    comparison = compare_at_equal_cost(load_trials(tmp_path))
    assert comparison.gains == {} and sorted(comparison.without_cost) == ["mt-avg_0", "mt-r_0"]
    write_report(tmp_path, "test")
    assert "at equal annotation cost" not in (tmp_path / "report.md").read_text()


def test_a_method_that_spent_more_is_compared_at_randoms_final_cost(tmp_path):
    random = ([0.0, 10.0, 20.0], [0.4, 0.6, 0.8])
    # the method's curve at 20 (random's last cost): 0.4 + 0.5·20/30 = 0.7333
    assert final_at_common_cost(([0.0, 30.0], [0.4, 0.9]), random) == pytest.approx(-0.0667, 1e-3)
    # spent less: the same as paired_at_cost's final (random read at 15)
    mine = ([0.0, 5.0, 15.0], [0.4, 0.6, 0.75])
    assert final_at_common_cost(mine, random) == pytest.approx(paired_at_cost(mine, random)[0])
    trial(tmp_path, "mt-r", 0, [0.4, 0.6, 0.8], [10.0, 10.0, None])
    trial(tmp_path, "mt-avg", 0, [0.4, 0.6, 0.9], [15.0, 15.0, None])  # 30 against 20
    (gain,) = compare_at_equal_cost(load_trials(tmp_path)).gains[""].values()
    # at cost 20 the method stands at 0.6 + 0.3·5/15 = 0.7, random at 0.8
    assert gain.final.mean == pytest.approx(-0.1) and gain.cost_ratio == pytest.approx(1.5)


def test_a_single_task_trial_is_not_compared_with_randoms_geometric_mean(tmp_path):
    def add_id(name: str, score: float) -> None:  # a second task, ID, on every row
        path = tmp_path / "trials" / name / "summary.json"
        summary = json.loads(path.read_text())
        for row in summary["rows"]:
            row["test.id"] = row["dev.id"] = score
        path.write_text(json.dumps(summary))

    trial(tmp_path, "mt-r", 0, [0.4, 0.6, 0.8], [10.0, 10.0, None])
    add_id("mt-r_0", 0.9)
    trial(tmp_path, "mt-avg", 0, [0.5, 0.7, 0.9], [10.0, 10.0, None])
    add_id("mt-avg_0", 0.9)
    trial(tmp_path, "st-ec", 0, [0.5, 0.7, 0.9], [10.0, 10.0, None])  # SF alone
    comparison = compare_at_equal_cost(load_trials(tmp_path))
    assert comparison.other_tasks == ["st-ec_0"]
    assert list(comparison.gains[""]) == ["mt-avg"]
    # MT-AVG's geometric mean √(0.9·0.9) = 0.9 against random's √(0.8·0.9) at the same cost
    assert comparison.gains[""]["mt-avg"].final.mean == pytest.approx(0.9 - (0.8 * 0.9) ** 0.5)
    write_report(tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "Left out (scored on other tasks than MT-R): st-ec_0." in md
