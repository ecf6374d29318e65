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
