"""The sweep report as a pure function of hand-made trial folders (known answers)."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mtal_ray.cli import main as cli_main
from mtal_ray.sweep.report import (
    beta_references,
    beta_series,
    curve_series,
    overlap,
    overlap_matrices,
    score_table,
    table_markdown,
    write_report,
)
from mtal_ray.sweep.results import TrialRecord, load_trials, save_sweep_info


def make_trial(
    sweep: Path,
    method: str,
    beta: float | None,
    seed: int,
    finals: dict[str, float] | None,
    *,
    dataset: str | None = None,
    selection: list[str] | None = None,
    status: str = "finished",
    test: bool = True,
    start: dict[str, float] | None = None,
    error: str | None = None,
) -> Path:
    """A trial folder as the sweep writes it: trial.json, summary.json, round_0 selection."""
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
        status=status, attempts=1, error=error, tasks=list(finals or {}),
    ).save(folder)  # fmt: skip
    if finals is not None:
        start = start or {t: 0.5 for t in finals}
        rows = []
        for iteration, (labeled, scores) in enumerate([(10, start), (20, finals)]):
            row: dict = {"iteration": iteration, "labeled": labeled}
            row.update({f"dev.{t}": v - 0.01 for t, v in scores.items()})
            if test:
                row.update({f"test.{t}": v for t, v in scores.items()})
            row.update(selected=10, cost=0.0)
            rows.append(row)
        # sort_keys like the driver's summary.json: column order comes from trial.json's tasks
        summary = {"rows": rows, "status": "finished"}
        (folder / "summary.json").write_text(json.dumps(summary, sort_keys=True))
    if selection is not None:
        (folder / "rounds" / "round_0").mkdir(parents=True)
        payload = {
            "method": method,
            "ids": selection,
            "tasks": {i: ["sf", "id"] for i in selection},
        }
        (folder / "rounds" / "round_0" / "selection.json").write_text(json.dumps(payload))
    return folder


@pytest.fixture
def beta_sweep(tmp_path: Path) -> Path:
    """2 methods × 2 β × 2 seeds on one dataset, scores chosen for easy hand arithmetic."""
    sweep = tmp_path / "sweep"
    finals = {
        ("mt-avg", 0.5): [{"sf": 0.80, "id": 0.90}, {"sf": 0.84, "id": 0.94}],
        ("mt-avg", 1.0): [{"sf": 0.70, "id": 0.60}, {"sf": 0.70, "id": 0.60}],
        ("mt-r", 0.5): [{"sf": 0.50, "id": 0.40}, {"sf": 0.60, "id": 0.40}],
        ("mt-r", 1.0): [{"sf": 0.55, "id": 0.45}, {"sf": 0.55, "id": 0.45}],
    }
    selections = {
        ("mt-avg", 0.5): [["a", "b", "e", "f"], ["a", "b", "c", "f"]],
        ("mt-avg", 1.0): [["a", "b", "c", "d"], ["w", "x", "y", "z"]],
        ("mt-r", 0.5): [["a", "b", "c", "d"], ["a", "b", "c", "d"]],
        ("mt-r", 1.0): [["a", "b", "c", "d"], ["a", "b", "c", "d"]],
    }
    for (method, beta), per_seed in finals.items():
        for seed, scores in enumerate(per_seed):
            make_trial(
                sweep, method, beta, seed, scores, selection=selections[(method, beta)][seed]
            )
    return sweep


def test_table_is_mean_and_sample_std_over_seeds(beta_sweep: Path):
    table = score_table(load_trials(beta_sweep), "test")
    # Paper's method order (MT-R first), then β ascending.
    assert table.labels == ["mt-r (β=0.5)", "mt-r (β=1)", "mt-avg (β=0.5)", "mt-avg (β=1)"]
    assert table.columns == [(None, "sf"), (None, "id")]
    mean, std, n = table.cells["mt-avg (β=0.5)"][(None, "sf")]
    assert n == 2 and mean == pytest.approx(0.82) and std == pytest.approx(math.sqrt(2) * 0.02)
    mean, std, n = table.cells["mt-r (β=0.5)"][(None, "sf")]
    assert mean == pytest.approx(0.55) and std == pytest.approx(math.sqrt(0.005))
    assert table.cells["mt-avg (β=1)"][(None, "id")] == pytest.approx((0.60, 0.0, 2))
    assert table.average["mt-avg (β=0.5)"] == pytest.approx((0.82 + 0.92) / 2)
    assert table.average["mt-r (β=1)"] == pytest.approx(0.50)
    assert table.best((None, "id")) == "mt-avg (β=0.5)"


def test_dev_is_used_when_trials_have_no_test_split(tmp_path: Path):
    make_trial(tmp_path, "mt-par", None, 0, {"sf": 0.7}, test=False)
    table = score_table(load_trials(tmp_path), "test")
    assert table.labels == ["mt-par"]
    assert table.cells["mt-par"][(None, "sf")][0] == pytest.approx(0.69)


def test_trials_with_and_without_test_scores_are_all_reported_on_dev(tmp_path: Path):
    """Never some trials on test beside others on dev: the whole report goes to dev, and
    says why."""
    from mtal_ray.sweep.report import common_split

    make_trial(tmp_path, "mt-r", None, 0, {"sf": 0.6})
    make_trial(tmp_path, "mt-par", None, 0, {"sf": 0.7}, test=False)
    trials = load_trials(tmp_path)
    split, note = common_split(trials, "test")
    assert split == "dev" and note is not None
    assert note.startswith("1 of 2 trials have no test scores (d_mt-par_None_0): every score")
    write_report(tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "Final dev score of each task" in md and note in md
    table = score_table(trials, split)
    assert table.cells["mt-r"][(None, "sf")][0] == pytest.approx(0.59)  # mt-r's dev, not test
    assert common_split(load_trials(tmp_path), "dev") == ("dev", None)


def test_a_trials_tasks_are_those_with_a_dev_or_test_score():
    from mtal_ray.sweep.results import TrialResult

    record = TrialRecord("t", {}, method="mt-avg", tasks=["ner", "re"])
    rows = [
        {"dev.re": 0.2, "test.re": 0.1, "stop.ner": 0.01, "cost.ner": 3.0, "cost": 9.0},
        {"dev.re": 0.3, "dev.extra": 0.5, "stop.ner": 0.0, "stopped": "ner"},
    ]
    result = TrialResult(record, rows)
    # ner has only stopping and cost columns: no score, so no task of the table
    assert result.tasks == ["re", "extra"]
    assert result.scores("test") == {"re": [0.1, None], "extra": [None, 0.5]}
    assert result.scores("test", fallback=False) == {"re": [0.1, None], "extra": [None, None]}


def test_columns_follow_the_sweeps_dataset_order_and_missing_cells_are_marked(tmp_path: Path):
    make_trial(tmp_path, "mt-avg", None, 0, {"ner": 0.6, "re": 0.3}, dataset="conll04")
    make_trial(tmp_path, "mt-avg", None, 0, {"sf": 0.8, "id": 0.9}, dataset="atis")
    make_trial(tmp_path, "mt-max", None, 0, {"sf": 0.7, "id": 0.5}, dataset="atis")
    table = score_table(load_trials(tmp_path), "test", datasets=["conll04", "atis"])
    assert [table.column_name(c) for c in table.columns] == [
        "conll04/ner", "conll04/re", "atis/sf", "atis/id",
    ]  # fmt: skip
    assert table.average["mt-avg"] == pytest.approx((0.6 + 0.3 + 0.8 + 0.9) / 4)
    assert table.complete == {"mt-avg": True, "mt-max": False}
    md = table_markdown(table)
    # ×100 (all scores are fractions), best per column in bold, missing cells as dashes.
    assert "| mt-avg | **60.00** | **30.00** | **80.00** | **90.00** | **65.00** |" in md
    assert "| mt-max | – | – | 70.00 | 50.00 | 60.00* |" in md


def test_failed_and_unfinished_trials_stay_out_of_the_table(tmp_path: Path):
    make_trial(tmp_path, "mt-avg", None, 0, {"sf": 0.8})
    make_trial(tmp_path, "mt-min", None, 0, None, status="failed", error="Boom\nValueError: bad")
    make_trial(tmp_path, "mt-max", None, 0, None, status="running")
    table = score_table(load_trials(tmp_path), "test")
    assert table.labels == ["mt-avg"]
    write_report(tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "Trials: 1 finished, 1 failed, 1 unfinished." in md
    assert "`d_mt-min_None_0`: ValueError: bad" in md


def test_overlap_after_round_one_matches_hand_count(beta_sweep: Path):
    matrices = overlap_matrices(load_trials(beta_sweep))
    labels, matrix = matrices[None]
    assert labels == ["mt-r (β=0.5)", "mt-r (β=1)", "mt-avg (β=0.5)", "mt-avg (β=1)"]
    m = {(a, b): matrix[i][j] for i, a in enumerate(labels) for j, b in enumerate(labels)}
    # seed 0: {a,b,e,f} vs {a,b,c,d} -> 2/4; seed 1: {a,b,c,f} vs {a,b,c,d} -> 3/4.
    assert m[("mt-avg (β=0.5)", "mt-r (β=0.5)")] == pytest.approx(0.625)
    # seed 0: equal sets; seed 1: disjoint.
    assert m[("mt-avg (β=1)", "mt-r (β=1)")] == pytest.approx(0.5)
    assert all(m[(a, a)] == 1.0 for a in labels)
    assert all(m[(a, b)] == m[(b, a)] for a in labels for b in labels)


def test_overlap_is_none_for_methods_without_a_common_seed(tmp_path: Path):
    make_trial(tmp_path, "mt-avg", None, 0, {"sf": 0.8}, selection=["a", "b"])
    make_trial(tmp_path, "mt-max", None, 1, {"sf": 0.8}, selection=["a", "b"])
    labels, matrix = overlap_matrices(load_trials(tmp_path))[None]
    assert labels == ["mt-avg", "mt-max"] and matrix[0][1] is None and matrix[0][0] == 1.0


@given(
    st.sets(st.integers(0, 30), max_size=12).map(lambda s: [str(i) for i in s]),
    st.sets(st.integers(0, 30), max_size=12).map(lambda s: [str(i) for i in s]),
)
def test_overlap_properties(a: list[str], b: list[str]):
    value = overlap(a, b)
    assert 0.0 <= value <= 1.0
    assert value == overlap(b, a)
    assert (value == 1.0) == (set(a) == set(b))
    if a and b and not set(a) & set(b):
        assert value == 0.0


def test_score_against_beta_per_method(beta_sweep: Path):
    series = beta_series(load_trials(beta_sweep), "test")
    assert list(series) == [(None, "sf"), (None, "id")]
    sf = series[(None, "sf")]
    assert list(sf) == ["mt-r", "mt-avg"]
    assert [p[0] for p in sf["mt-avg"]] == [0.5, 1.0]
    assert sf["mt-avg"][0][1] == pytest.approx(0.82) and sf["mt-avg"][1][1] == pytest.approx(0.70)
    assert sf["mt-r"][1] == pytest.approx((1.0, 0.55, 0.0))


def test_methods_without_beta_are_reference_lines(beta_sweep: Path):
    make_trial(beta_sweep, "mt-r", None, 0, {"sf": 0.3, "id": 0.2})
    make_trial(beta_sweep, "mt-r", None, 1, {"sf": 0.5, "id": 0.2})
    trials = load_trials(beta_sweep)
    refs = beta_references(trials, "test")
    assert refs[(None, "sf")]["mt-r"] == pytest.approx((0.4, math.sqrt(0.02)))
    # The β lines hold only the trials run with a β.
    assert [p[1] for p in beta_series(trials, "test")[(None, "sf")]["mt-r"]] == pytest.approx(
        [0.55, 0.55]
    )
    assert "beta.png" in {p.name for p in write_report(beta_sweep)}


def test_no_beta_plot_without_a_beta_sweep(tmp_path: Path):
    make_trial(tmp_path, "mt-avg", 0.5, 0, {"sf": 0.8})
    make_trial(tmp_path, "mt-max", 0.5, 0, {"sf": 0.7})
    assert beta_series(load_trials(tmp_path), "test") == {}
    (tmp_path / "beta.png").write_bytes(b"stale")
    written = {p.name for p in write_report(tmp_path)}
    assert written == {"report.md", "report.csv", "learning_curves.png"}
    assert not (tmp_path / "beta.png").exists()


def test_learning_curves_average_seeds_per_iteration(beta_sweep: Path):
    curves = curve_series(load_trials(beta_sweep), "test")
    curve = curves[(None, "sf")]["mt-avg (β=0.5)"]
    assert curve.sizes == [10.0, 20.0]
    assert curve.mean == pytest.approx([0.5, 0.82])
    assert curve.std[0] == pytest.approx(0.0)


def test_write_report_files_and_csv(beta_sweep: Path):
    save_sweep_info(beta_sweep, {"name": "toy", "report_split": "test"})
    written = write_report(beta_sweep)
    names = {p.name for p in written}
    assert names == {
        "report.md", "report.csv", "learning_curves.png", "overlap.png", "beta.png",
        "gain_over_random.png", "reference.csv",  # the sweep has mt-r: the paired comparison
    }  # fmt: skip
    for name in ("learning_curves.png", "overlap.png", "beta.png", "gain_over_random.png"):
        assert (beta_sweep / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.DictReader(io.StringIO((beta_sweep / "report.csv").read_text())))
    assert next(r["method"] for r in rows) == "mt-r (β=0.5)"
    avg = next(r for r in rows if r["method"] == "mt-avg (β=0.5)")
    assert float(avg["sf.mean"]) == pytest.approx(0.82) and avg["sf.n"] == "2"
    assert float(avg["average"]) == pytest.approx(0.87)
    md = (beta_sweep / "report.md").read_text()
    assert md.startswith("# Sweep toy: final scores")
    assert "| mt-avg (β=0.5) | **82.00 ± 2.83** | **92.00 ± 2.83** | **87.00** |" in md
    assert "mean ± std over 2 seeds (0, 1)" in md
    assert "![Overlap of the first selection (after round 1)](overlap.png)" in md


def test_report_command_regenerates_and_reports_bad_dirs(beta_sweep: Path, tmp_path, capsys):
    assert cli_main(["report", str(beta_sweep), "--split", "dev"]) == 0
    assert "report.md" in capsys.readouterr().out
    rows = list(csv.DictReader(io.StringIO((beta_sweep / "report.csv").read_text())))
    avg = next(r for r in rows if r["method"] == "mt-avg (β=0.5)")
    assert float(avg["sf.mean"]) == pytest.approx(0.81)  # dev = test - 0.01 in the fixture
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli_main(["report", str(empty)]) == 2
    assert "not a sweep directory" in capsys.readouterr().err


def _stopping_trial(
    sweep: Path, seed: int, stopping: list, costs: list, finals: dict, stops: dict | None
) -> None:
    """An mt-avg trial with or without ``al.stopping`` (its rows cost ``costs`` per round)."""
    params = {"selection.method": "mt-avg", "seed": seed, "al.stopping": stopping}
    name = f"mt-avg_{'stop' if stopping else 'all'}_{seed}"
    folder = sweep / "trials" / name
    folder.mkdir(parents=True)
    TrialRecord(
        name=name, params=params, method="mt-avg", seed=seed, status="finished", attempts=1,
        tasks=list(finals),
    ).save(folder)  # fmt: skip
    rows = [
        {
            "iteration": i,
            "labeled": 10 * (i + 1),
            "cost": cost,
            **{f"test.{t}": 0.5 for t in finals},
        }
        for i, cost in enumerate(costs)
    ]
    rows[-1].update({f"test.{t}": v for t, v in finals.items()})
    summary = {"rows": rows, "status": "finished", "stopping": stops or {}}
    (folder / "summary.json").write_text(json.dumps(summary))


def test_the_report_shows_where_tasks_stopped_and_the_cost_saved(tmp_path):
    from mtal_ray.sweep.report import stopping_rows

    rule = [{"criterion": "dev-plateau", "threshold": 0.01, "window": 2}]
    for seed, (stopped_id, spent, score_sf) in enumerate([(1, 60.0, 0.70), (2, 90.0, 0.72)]):
        _stopping_trial(tmp_path, seed, [], [50.0, 50.0, 50.0, None], {"sf": 0.71, "id": 0.9}, None)
        stops = {
            "sf": {"stopped_at": None, "criterion": "dev-plateau", "value": 0.05},
            "id": {"stopped_at": stopped_id, "criterion": "dev-plateau", "value": 0.0},
        }
        costs = [spent / 3] * 3 + [None]
        _stopping_trial(tmp_path, seed, rule, costs, {"sf": score_sf, "id": 0.9}, stops)
    rows = stopping_rows(load_trials(tmp_path))
    assert len(rows) == 1
    row = rows[0]
    assert row["label"] == "mt-avg (stopping=dev-plateau threshold=0.01 window=2)"
    assert row["stopped_at"] == {"sf": [None, None], "id": [1, 2]}
    assert row["cost"] == pytest.approx(75.0) and row["reference_cost"] == pytest.approx(150.0)
    # seed 0 saved 1 - 60/150 = 0.6, seed 1 saved 1 - 90/150 = 0.4
    assert row["saved"] == pytest.approx(0.5)
    assert row["score_change"]["sf"] == pytest.approx(((0.70 - 0.71) + (0.72 - 0.71)) / 2)
    assert row["score_change"]["id"] == pytest.approx(0.0)
    write_report(tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "## Per-task stopping" in text
    assert (
        "| mt-avg (stopping=dev-plateau threshold=0.01 window=2) | sf | –, – | 75 | 150 | 50 % |"
        in text
    )
    assert "|  | id | 1, 2 |  |  |  | +0.00 |" in text


def test_a_report_without_stopping_runs_has_no_stopping_section(tmp_path):
    make_trial(tmp_path, "mt-r", None, 0, {"sf": 0.5})
    write_report(tmp_path)
    assert "Per-task stopping" not in (tmp_path / "report.md").read_text()


def test_stopping_runs_without_a_reference_say_so(tmp_path):
    from mtal_ray.sweep.report import stopping_markdown, stopping_rows

    stops = {"sf": {"stopped_at": 1, "criterion": "budget", "value": 40.0}}
    _stopping_trial(
        tmp_path, 0, [{"criterion": "budget", "threshold": 40}], [40.0, None], {"sf": 0.6}, stops
    )
    rows = stopping_rows(load_trials(tmp_path))
    assert rows[0]["cost"] == 40.0 and "saved" not in rows[0]
    assert "No run without stopping to compare with" in stopping_markdown(rows, "test", 100.0)
