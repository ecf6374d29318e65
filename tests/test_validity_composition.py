"""benchmarks/validity.py: what a labeled set covers (hand-computed entropies)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from validity import label_composition

ROWS = [
    {"tokens": ["a", "b", "c"], "id.label": "a", "sf.tags": ["B-x", "I-x", "O"]},
    {"tokens": ["a"], "id.label": "a", "sf.tags": ["B-y"]},
    {"tokens": [], "id.label": "b", "sf.tags": []},
    {"tokens": ["a", "b"], "id.label": "c", "sf.tags": ["O", "B-x"]},
]


def test_types_and_normalized_entropy_by_hand() -> None:
    out = label_composition(ROWS)

    assert out["sentences"] == 4
    assert out["mean_tokens"] == pytest.approx(1.5)
    # intents a, a, b, c: p = 1/2, 1/4, 1/4 over 3 types
    h_id = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25)) / math.log(3)
    assert out["id.label"] == {"types": 3, "entropy": round(h_id, 4), "count": 4}
    # slot mentions (B- tags): x twice, y once
    h_sf = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3)) / math.log(2)
    assert out["sf.tags"] == {"types": 2, "entropy": round(h_sf, 4), "count": 3}


def test_one_type_has_zero_entropy_and_an_empty_set_only_its_size() -> None:
    out = label_composition([{"tokens": ["x"], "id.label": "a", "sf.tags": ["O"]}] * 3)
    assert out["id.label"] == {"types": 1, "entropy": 0.0, "count": 3}
    assert out["sf.tags"] == {"types": 0, "entropy": 0.0, "count": 0}
    assert label_composition([]) == {"sentences": 0}
