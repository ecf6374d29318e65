"""benchmarks/validity_cost.py: gold annotation costs and the comparison at equal cost
(hand-worked numbers, real files, no Ray)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import validity_cost

from mtal_ray.driver.annotation import label_cost_table
from mtal_ray.selection import annotation_cost
from mtal_ray.selection.cost import CostModel

ROWS = [  # 4 words, 2 slots; 2 words, no slot
    {"id": "a", "tokens": ["to", "new", "york", "x"], "sf.tags": ["O", "B-c", "I-c", "B-d"],
     "id.label": "flight"},
    {"id": "b", "tokens": ["hi", "there"], "sf.tags": ["O", "O"], "id.label": "greet"},
]  # fmt: skip


def test_gold_costs_follow_the_papers_model_on_the_gold_labels():
    costs = label_cost_table(ROWS, ["sf", "id"])
    # SF + ID: m + tp·slots (SF) + m + ts (ID) − m (the words are read once)
    assert annotation_cost(costs, {"a": ["sf", "id"]}, CostModel()) == 4 + 2 + 3
    assert annotation_cost(costs, {"b": ["sf", "id"]}, CostModel()) == 2 + 0 + 3
    assert annotation_cost(costs, {"a": ["id"], "b": ["sf"]}, CostModel()) == (4 + 3) + (2 + 0)


def test_a_trials_cumulative_cost_counts_each_rounds_selection_before_the_next_training(
    tmp_path: Path,
):
    rows = [
        {"iteration": i, "labeled": 10 + i, "test.sf": s, "test.id": d}
        for i, (s, d) in enumerate([(0.25, 1.0), (0.64, 1.0), (0.81, 1.0)])
    ]
    (tmp_path / "summary.json").write_text(json.dumps({"rows": rows}))
    for i, ids in enumerate([["a"], ["b"]]):
        folder = tmp_path / "rounds" / f"round_{i}"
        folder.mkdir(parents=True)
        (folder / "selection.json").write_text(json.dumps({"ids": ids}))
    costs = label_cost_table(ROWS, ["sf", "id"])
    curve = validity_cost.trial_curve(tmp_path, costs, ["sf", "id"])
    assert curve["cost"] == [0.0, 9.0, 14.0]
    assert curve["gmean"] == pytest.approx([0.5, 0.8, 0.9])
    (tmp_path / "rounds" / "round_1" / "selection.json").unlink()
    assert validity_cost.trial_curve(tmp_path, costs, ["sf", "id"]) is None


def test_equal_cost_reads_random_by_interpolation_and_never_extrapolates():
    random = {"cost": [0.0, 10.0, 20.0], "gmean": [0.5, 0.6, 0.8]}
    method = {"cost": [0.0, 5.0, 30.0], "gmean": [0.5, 0.6, 0.9]}
    out = validity_cost.paired(method, random)
    # at cost 5 random stands at 0.55; cost 30 is beyond random's curve
    assert out["delta_same_cost"] == [0.0, 5.0, None]
    assert out["delta_same_sentences"] == [0.0, 0.0, 10.0]
    assert out["cost_ratio_final"] == 1.5
    # areas over [0, 20]: method 0.5→0.6 over [0, 5] then 0.6→0.8 over [5, 20] (at 20 it
    # stands at 0.6 + 0.3·15/25 = 0.78); random 0.5→0.6→0.8
    method_area = (5 * 0.55 + 15 * (0.6 + 0.78) / 2) / 20
    random_area = (10 * 0.55 + 10 * 0.7) / 20
    assert out["delta_auc_same_cost"] == pytest.approx(100 * (method_area - random_area), abs=0.01)


def test_a_round_priced_by_the_run_itself_needs_no_selection_file(tmp_path: Path):
    rows = [
        {"iteration": 0, "labeled": 10, "test.sf": 0.25, "test.id": 1.0, "cost_annotated": 7.0},
        {"iteration": 1, "labeled": 12, "test.sf": 0.64, "test.id": 1.0, "cost_annotated": None},
        {"iteration": 2, "labeled": 13, "test.sf": 0.81, "test.id": 1.0, "cost_annotated": None},
    ]
    (tmp_path / "summary.json").write_text(json.dumps({"rows": rows}))
    folder = tmp_path / "rounds" / "round_1"  # round 1 recorded no cost: priced from its file
    folder.mkdir(parents=True)
    (folder / "selection.json").write_text(json.dumps({"ids": ["b"]}))
    curve = validity_cost.trial_curve(tmp_path, label_cost_table(ROWS, ["sf", "id"]), ["sf", "id"])
    assert curve["cost"] == [0.0, 7.0, 12.0]


def test_trials_go_under_their_method_or_method_at_budget_and_other_arms_are_left_out():
    def record(params, status="finished"):
        return {"status": status, "method": params["selection.method"], "params": params}

    assert validity_cost.curve_key(record({"selection.method": "mt-r", "seed": 1})) == "mt-r"
    budget = {"selection.method": "blp-joint-min", "selection.budget": 500.0, "seed": 0}
    assert validity_cost.curve_key(record(budget)) == "blp-joint-min@500"
    ce = {"selection.method": "mt-avg", "training.label_smoothing.sf": 0.0, "seed": 0}
    assert validity_cost.curve_key(record(ce)) is None
    assert validity_cost.curve_key(record({"selection.method": "mt-r", "seed": 1}, "error")) is None
    length = {"selection.method": "mt-rrf", "selection.uncertainty": "total", "seed": 2}
    assert validity_cost.curve_key(record(length)) == "mt-rrf-total"
    both = {**length, "selection.budget": 500.0}
    assert validity_cost.curve_key(record(both)) == "mt-rrf-total@500"


def test_the_final_equal_cost_comparison_is_at_the_smaller_final_cost():
    random = {"cost": [0.0, 200.0], "gmean": [0.5, 0.6]}
    cheaper = validity_cost.paired({"cost": [0.0, 100.0], "gmean": [0.5, 0.7]}, random)
    # at 100, MT-R interpolated: 0.55 -> +15 points, the same as its last same-cost delta
    assert cheaper["delta_final_common_cost"] == pytest.approx(15.0)
    assert cheaper["delta_same_cost"][-1] == pytest.approx(15.0)
    dearer = validity_cost.paired({"cost": [0.0, 400.0], "gmean": [0.5, 0.9]}, random)
    # past MT-R's last cost nothing is extrapolated: compared at 200, the method at 0.7
    assert dearer["delta_same_cost"][-1] is None
    assert dearer["delta_final_common_cost"] == pytest.approx(10.0)


def test_blp_is_paired_with_greedy_at_the_same_budget_and_seed():
    def curve(labeled, cost, gmean):
        return {"labeled": labeled, "cost": cost, "gmean": gmean}

    curves = {
        "mt-min@500": {
            "0": curve([10, 20, 30], [0.0, 500.0, 1000.0], [0.5, 0.6, 0.8]),
            "1": curve([10, 21, 31], [0.0, 490.0, 980.0], [0.5, 0.7, 0.8]),
        },
        "blp-joint-min@500": {
            "0": curve([10, 25, 40], [0.0, 500.0, 900.0], [0.5, 0.55, 0.7]),
            "1": curve([10, 25, 40], [0.0, 500.0, 1000.0], [0.5, 0.7, 0.9]),
        },
        "mt-r": {"0": curve([10, 20, 30], [0.0, 600.0, 1200.0], [0.5, 0.6, 0.7])},
    }
    out = validity_cost.compare_budget_pairs(curves)
    pair = out["blp-joint-min@500 vs mt-min@500"]
    seed0, seed1 = pair["seeds"]
    assert seed0["labeled"] == [30, 40] and seed0["gold_cost"] == [1000.0, 900.0]
    assert seed0["delta_final"] == pytest.approx(-10.0)
    # greedy at BLP's final cost 900 stands at 0.6 + 0.2·400/500 = 0.76
    assert seed0["delta_same_cost"] == pytest.approx(-6.0)
    # BLP spent 1000, beyond greedy's 980: compared at 980, BLP at 0.7 + 0.2·480/500
    assert seed1["delta_same_cost"] == pytest.approx(100 * (0.7 + 0.2 * 480 / 500 - 0.8))
    assert pair["summary"]["delta_final"]["wins"] == 1
    assert pair["summary"]["delta_final"]["losses"] == 1
    assert pair["summary"]["delta_same_cost"]["seeds"] == 2  # no seed left out
    assert list(out) == ["blp-joint-min@500 vs mt-min@500"]  # MT-R pairs with nothing


def test_the_budget_pair_with_the_total_pairs_only_with_its_own_kind():
    def curve(gmean):
        return {"labeled": [10, 30], "cost": [0.0, 500.0], "gmean": gmean}

    curves = {
        "mt-rrf@500": {"0": curve([0.5, 0.6])},
        "blp-joint-rrf@500": {"0": curve([0.5, 0.7])},
        "mt-rrf-total@500": {"0": curve([0.5, 0.8])},
        "blp-joint-rrf-total@500": {"0": curve([0.5, 0.75])},
    }
    out = validity_cost.compare_budget_pairs(curves)
    assert sorted(out) == [
        "blp-joint-rrf-total@500 vs mt-rrf-total@500",
        "blp-joint-rrf@500 vs mt-rrf@500",
    ]
    assert out["blp-joint-rrf@500 vs mt-rrf@500"]["seeds"][0]["delta_final"] == pytest.approx(10.0)
    total = out["blp-joint-rrf-total@500 vs mt-rrf-total@500"]["seeds"][0]
    assert total["delta_final"] == pytest.approx(-5.0)


def test_the_pool_size_is_the_scenarios_own_not_the_last_collected():
    recorded_pool_size = validity_cost.recorded_pool_size
    results = {
        "protocol": {"pool_size": None},  # written by the last scenario collected (conll04)
        "scenarios": {"atis": {"pool_size": 2000}, "conll04": {"pool_size": None}},
    }
    assert recorded_pool_size(results, "atis") == 2000
    assert recorded_pool_size(results, "conll04") is None
    assert recorded_pool_size({"protocol": {"pool_size": 1500}}, "ewt") == 1500
