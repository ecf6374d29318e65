"""The report's comparison with MT-R, from hand-made trial folders (known answers, no Ray)."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest

from mtal_ray.sweep.reference import (
    GEO_MEAN,
    bootstrap_ci,
    compare_with_reference,
    curve_area,
    gain_text,
    paired_gain,
    t_interval,
)
from mtal_ray.sweep.report import write_report
from mtal_ray.sweep.results import TrialRecord, load_trials

SIZES = [10, 20, 40]


def trial(
    sweep: Path,
    method: str,
    seed: int,
    curves: dict[str, list[float]],
    *,
    beta: float | None = None,
    dataset: str | None = None,
    sizes: list[int] | None = None,
) -> None:
    """A finished trial folder with one test score per task and iteration (sizes SIZES)."""
    params: dict = {"selection.method": method, "seed": seed}
    if beta is not None:
        params["selection.beta"] = beta
    if dataset is not None:
        params["dataset"] = dataset
    name = f"{dataset or 'd'}_{method}_{beta}_{seed}"
    folder = sweep / "trials" / name
    folder.mkdir(parents=True)
    TrialRecord(
        name=name, params=params, method=method, beta=beta, seed=seed, dataset=dataset,
        status="finished", attempts=1, tasks=list(curves),
    ).save(folder)  # fmt: skip
    rows = []
    for i, size in enumerate(sizes or SIZES):
        row: dict = {"iteration": i, "labeled": size, "selected": 10, "cost": 0.0}
        row.update({f"test.{t}": v[i] for t, v in curves.items()})
        row.update({f"dev.{t}": v[i] for t, v in curves.items()})
        rows.append(row)
    (folder / "summary.json").write_text(json.dumps({"rows": rows, "status": "finished"}))


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """MT-R and MT-AVG on two seeds; MT-AVG's SF gains are 0/+0.1/+0.2 and 0/−0.05/+0.2."""
    root = tmp_path / "sweep"
    trial(root, "mt-r", 0, {"sf": [0.5, 0.6, 0.7], "id": [0.8, 0.8, 0.8]})
    trial(root, "mt-r", 1, {"sf": [0.4, 0.5, 0.6], "id": [0.8, 0.9, 0.9]})
    trial(root, "mt-avg", 0, {"sf": [0.5, 0.7, 0.9], "id": [0.8, 0.8, 0.8]})
    trial(root, "mt-avg", 1, {"sf": [0.4, 0.45, 0.8], "id": [0.8, 0.9, 0.9]})
    return root


def test_curve_area_is_the_trapezoid_over_sizes_divided_by_the_x_range() -> None:
    assert curve_area([0, 10, 30], [0.0, 1.0, 1.0]) == pytest.approx((5 + 20) / 30)
    assert curve_area([10, 20, 40], [0.5, 0.5, 0.5]) == pytest.approx(0.5)  # flat curve
    assert curve_area([10], [0.7]) == pytest.approx(0.7)  # one point: its score
    with pytest.raises(ValueError):
        curve_area([1, 2], [0.5])


def test_bootstrap_interval_contains_the_mean_and_is_seeded() -> None:
    values = [0.1, 0.3, -0.2, 0.5, 0.2]
    low, high = bootstrap_ci(values, seed=0)
    assert low < sum(values) / len(values) < high
    assert min(values) <= low and high <= max(values)
    assert bootstrap_ci(values, seed=0) == (low, high)  # same seed, same interval
    assert bootstrap_ci(values, seed=1) != (low, high)
    assert bootstrap_ci([0.3], seed=0) == (0.3, 0.3)  # one seed: degenerate
    gain = paired_gain([0.2, -0.1, 0.0])
    assert (gain.seeds, gain.wins, gain.losses) == (3, 1, 1)
    assert gain.mean == pytest.approx(0.1 / 3)


def test_with_three_seeds_the_bootstrap_is_the_range_and_the_t_interval_is_wider() -> None:
    # hand-worked: mean 2, s = 1, t(0.975, 2) = 4.303, half width 4.303 / √3 = 2.4843
    low, high = t_interval([1.0, 2.0, 3.0])  # type: ignore[misc]
    assert (low, high) == (pytest.approx(-0.4843, abs=1e-4), pytest.approx(4.4843, abs=1e-4))
    assert t_interval([0.5]) is None
    same_sign = paired_gain([0.01, 0.02, 0.03])
    assert (same_sign.low, same_sign.high) == (pytest.approx(0.01), pytest.approx(0.03))
    assert not same_sign.t_excludes_zero  # all three above 0, but t: [−0.015, +0.045]
    assert gain_text(same_sign, 100) == "+2.00 [+1.00, +3.00] 3/0"
    tight = paired_gain([0.10, 0.11, 0.12])  # t: 0.11 ± 0.0248
    assert tight.t_excludes_zero and gain_text(tight, 100) == "+11.00 [+10.00, +12.00] 3/0*"
    assert not paired_gain([0.3]).t_excludes_zero  # one seed: no interval at all
    same = paired_gain([0.6 - 0.59, 0.6 - 0.5 - 0.09, 0.01])  # no spread but rounding: no mark
    assert not same.t_excludes_zero and gain_text(same, 100) == "+1.00 [+1.00, +1.00] 3/0"


def test_the_t_quantiles_match_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    for n in range(2, 200):
        values = [0.0] * (n - 1) + [1.0]
        low, high = t_interval(values)  # type: ignore[misc]
        s = math.sqrt((1 - 1 / n) / (n - 1))  # the sample std of n − 1 zeros and a one
        quantile = (high - low) / 2 / (s / math.sqrt(n))
        assert quantile == pytest.approx(stats.t.ppf(0.975, n - 1), abs=1e-3), n


def test_paired_differences_per_iteration_and_on_the_area(sweep: Path) -> None:
    comparison = compare_with_reference(load_trials(sweep), "test")
    assert comparison.has_reference and comparison.seeds == [0, 1]
    assert list(comparison.curves) == [(None, "sf"), (None, "id"), (None, GEO_MEAN)]
    sf = comparison.curves[(None, "sf")]["mt-avg"]
    assert sf.iterations == [0, 1, 2] and sf.sizes == [10, 20, 40]
    assert [g.mean for g in sf.gains] == pytest.approx([0.0, 0.025, 0.2])
    assert [(g.wins, g.losses) for g in sf.gains] == [(0, 0), (1, 1), (2, 0)]
    last = sf.gains[2]
    assert (last.low, last.high) == pytest.approx((0.2, 0.2))  # equal differences
    assert sf.gains[1].low <= 0.025 <= sf.gains[1].high
    # AUC by hand: seed 0 (6 + 16) / 30 − (5.5 + 13) / 30; seed 1 (4.25 + 12.5) / 30 −
    # (4.5 + 11) / 30
    diffs = [(22 - 18.5) / 30, (16.75 - 15.5) / 30]
    assert sf.area.mean == pytest.approx(sum(diffs) / 2)
    assert sf.area_method == pytest.approx((22 + 16.75) / 60)
    assert (sf.area.wins, sf.area.losses) == (2, 0)
    idg = comparison.curves[(None, "id")]["mt-avg"]
    assert all(g.mean == 0 and g.wins == g.losses == 0 for g in idg.gains)
    geo = comparison.curves[(None, GEO_MEAN)]["mt-avg"].gains[2]
    expected = [math.sqrt(0.9 * 0.8) - math.sqrt(0.7 * 0.8), math.sqrt(0.72) - math.sqrt(0.54)]
    assert geo.mean == pytest.approx(sum(expected) / 2)
    assert "mt-r" not in comparison.curves[(None, "sf")]  # the reference is not compared


def test_pairs_share_seed_dataset_and_beta(tmp_path: Path) -> None:
    flat = {"sf": [0.5, 0.5, 0.5]}
    trial(tmp_path, "mt-r", 0, {"sf": [0.5, 0.5, 0.5]}, beta=0.5)
    trial(tmp_path, "mt-r", 0, {"sf": [0.1, 0.1, 0.1]}, beta=1.0)
    trial(tmp_path, "mt-avg", 0, {"sf": [0.6, 0.6, 0.6]}, beta=0.5)
    trial(tmp_path, "mt-avg", 0, flat, beta=1.0)
    trial(tmp_path, "mt-avg", 1, flat, beta=0.5)  # no MT-R of seed 1
    trial(tmp_path, "mt-r", 0, {"sf": [0.0, 0.0, 0.0]}, dataset="other")
    comparison = compare_with_reference(load_trials(tmp_path), "test")
    curves = comparison.curves[(None, "sf")]
    assert curves["mt-avg (β=0.5)"].gains[-1].mean == pytest.approx(0.1)  # vs β=0.5's 0.5
    assert curves["mt-avg (β=1)"].gains[-1].mean == pytest.approx(0.4)  # vs β=1's 0.1
    assert comparison.unpaired == ["d_mt-avg_0.5_1"]
    assert comparison.single_seed


def test_report_has_the_mt_r_section_csv_and_plot(sweep: Path) -> None:
    written = {p.name for p in write_report(sweep)}
    assert {"gain_over_random.png", "reference.csv"} <= written
    assert (sweep / "gain_over_random.png").stat().st_size > 0
    md = (sweep / "report.md").read_text()
    assert "## Gain over random selection (MT-R)" in md
    assert "### sf" in md and "### geometric mean of the tasks" in md
    assert "| method | it 0 (10) | it 1 (20) | it 2 (40) | AUC |" in md
    # ×100, both seeds +0.2: no spread (t: [+20, +20]), so no * mark
    assert "+20.00 [+20.00, +20.00] 2/0 |" in md or "+20.00 [+20.00, +20.00] 2/0\n" in md
    assert "One seed only" not in md
    assert (
        "![Gain over MT-R per iteration (band: the bootstrap interval)](gain_over_random.png)" in md
    )
    rows = list(csv.DictReader(io.StringIO((sweep / "reference.csv").read_text())))
    auc = [r for r in rows if r["task"] == "sf" and r["iteration"] == "auc"]
    assert len(auc) == 1 and float(auc[0]["gain"]) == pytest.approx(
        ((22 - 18.5) / 30 + (16.75 - 15.5) / 30) / 2
    )
    assert auc[0]["wins"] == "2" and auc[0]["losses"] == "0"
    assert float(auc[0]["t_low"]) <= float(auc[0]["gain"]) <= float(auc[0]["t_high"])
    assert "another size than MT-R's" not in md


def test_methods_whose_labeled_sets_differ_in_size_are_flagged(sweep: Path) -> None:
    trial(sweep, "mt-min", 0, {"sf": [0.5, 0.7, 0.8], "id": [0.8, 0.8, 0.8]}, sizes=[10, 25, 45])
    comparison = compare_with_reference(load_trials(sweep), "test")
    assert comparison.other_sizes == ["mt-min"]
    write_report(sweep)
    md = (sweep / "report.md").read_text()
    assert "another size than MT-R's at the same iteration (a budget per round): `mt-min`" in md


def test_one_seed_and_no_reference_are_said(tmp_path: Path) -> None:
    one = tmp_path / "one"
    trial(one, "mt-r", 0, {"sf": [0.5, 0.6, 0.7]})
    trial(one, "mt-par", 0, {"sf": [0.5, 0.5, 0.8]})
    write_report(one)
    md = (one / "report.md").read_text()
    assert "One seed only: every interval is degenerate" in md
    assert "+10.00 1/0" in md  # no interval shown for a single seed

    none = tmp_path / "none"
    trial(none, "mt-avg", 0, {"sf": [0.5, 0.6, 0.7]})
    (none / "reference.csv").write_text("stale")
    written = {p.name for p in write_report(none)}
    assert "gain_over_random.png" not in written and not (none / "reference.csv").exists()
    assert "This sweep has no random reference" in (none / "report.md").read_text()


def test_a_key_only_some_trials_set_separates_their_rows(tmp_path: Path) -> None:
    """``mt-min`` greedy by count and ``mt-min`` under a budget (GRD_AL) are two rows."""
    trial(tmp_path, "mt-r", 0, {"sf": [0.5, 0.5, 0.5]})
    trial(tmp_path, "mt-min", 0, {"sf": [0.5, 0.6, 0.6]})
    budgeted = tmp_path / "trials" / "d_mt-min_None_0"
    budgeted.rename(tmp_path / "trials" / "plain")
    trial(tmp_path, "mt-min", 0, {"sf": [0.5, 0.7, 0.7]})
    record = json.loads((budgeted / "trial.json").read_text())
    record["params"]["selection.budget"] = 500.0
    (budgeted / "trial.json").write_text(json.dumps(record))
    curves = compare_with_reference(load_trials(tmp_path)).curves[(None, "sf")]
    assert curves["mt-min"].gains[-1].mean == pytest.approx(0.1)
    assert curves["mt-min (budget=500)"].gains[-1].mean == pytest.approx(0.2)
