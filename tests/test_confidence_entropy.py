"""Entropy-based confidence (EC) against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mtal_ray.confidence import (
    arc_candidate_mask,
    class_entropy_confidence,
    normalized_entropy,
    pair_entropy_confidence,
    token_entropy_confidence,
    tree_entropy_confidence,
)


def test_token_ec_two_labels_hand_computed() -> None:
    # word 1 uniform (normalized entropy 1), word 2 certain (0), word 3 is padding
    probs = np.array([[[0.5, 0.5], [1.0, 0.0], [0.3, 0.7]]])
    mask = np.array([[True, True, False]])
    assert token_entropy_confidence(probs, mask) == pytest.approx([0.5])


def test_token_ec_four_labels_hand_computed() -> None:
    # uniform over 4 -> 1; half/half over 2 of 4 -> log 2 / log 4 = 0.5; EC = 1 - 0.75
    probs = np.array([[[0.25] * 4, [0.5, 0.5, 0.0, 0.0]]])
    assert token_entropy_confidence(probs) == pytest.approx([0.25])


def test_token_ec_matches_equation_2_literally() -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(5), size=(3, 4))
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], bool)
    expected = []
    for b in range(3):
        m = mask[b].sum()
        total = sum(-(p * np.log(p)).sum() for p in probs[b, :m])
        expected.append(1 - total / (m * math.log(5)))
    assert token_entropy_confidence(probs, mask) == pytest.approx(expected)


def test_class_ec_hand_computed() -> None:
    probs = np.array([[0.5, 0.5, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.25] * 4])
    assert class_entropy_confidence(probs) == pytest.approx([0.5, 1.0, 0.0])


def test_arc_candidates_exclude_self_and_padding() -> None:
    cand = arc_candidate_mask(np.array([[True, True, False]]))
    # word 1: root and word 2; word 2: root and word 1; padded word 3: nothing
    assert cand[0].astype(int).tolist() == [[1, 0, 1, 0], [1, 1, 0, 0], [0, 0, 0, 0]]


def test_tree_ec_normalizes_by_candidate_heads_per_sentence_length() -> None:
    arcs = np.zeros((3, 3, 4))
    mask = np.array([[1, 1, 0], [1, 1, 1], [1, 0, 0]], bool)
    # 2-word sentence: word 1 split root/word 2 (2 candidates -> 1), word 2 on root (0)
    arcs[0, 0, [0, 2]] = 0.5
    arcs[0, 1, 0] = 1.0
    # 3-word sentence: word 1 uniform over 3 candidates (1); word 2 split over 2 of 3
    # candidates (log 2 / log 3); word 3 certain (0)
    arcs[1, 0, [0, 2, 3]] = 1 / 3
    arcs[1, 1, [0, 1]] = 0.5
    arcs[1, 2, 2] = 1.0
    # 1-word sentence: the root is the only candidate, whatever the model says
    arcs[2, 0, :] = 0.25
    expected = [0.5, 1 - (1 + math.log(2) / math.log(3)) / 3, 1.0]
    assert tree_entropy_confidence(arcs, mask) == pytest.approx(expected)


def test_tree_ec_drops_mass_on_the_dependent_itself() -> None:
    arcs = np.array([[[1.0, 0.0, 0.0], [0.5, 0.0, 0.5]]])  # word 2 half on itself
    assert tree_entropy_confidence(arcs) == pytest.approx([1.0])


def test_pair_ec_hand_computed_and_no_pairs() -> None:
    probs = np.zeros((2, 2, 3))
    probs[0, 0] = 1 / 3  # uniform over 2 relations + none -> 1
    probs[0, 1] = [0.0, 0.0, 1.0]  # certain "none" -> 0
    mask = np.array([[True, True], [False, False]])
    assert pair_entropy_confidence(probs, mask) == pytest.approx([0.5, 1.0])


def test_shape_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="arc probs"):
        tree_entropy_confidence(np.zeros((1, 3, 3)))
    with pytest.raises(ValueError, match="mask"):
        token_entropy_confidence(np.zeros((1, 3, 2)), np.ones((1, 2), bool))


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(np.float64, (3, 5, 4), elements=st.floats(0, 1)),
    hnp.arrays(np.bool_, (3, 5)),
)
def test_token_ec_in_unit_interval_and_ignores_padding(raw: np.ndarray, mask: np.ndarray) -> None:
    ec = token_entropy_confidence(raw, mask)
    assert np.all((ec >= 0) & (ec <= 1 + 1e-12))
    garbage = np.where(mask[..., None], raw, 0.123)
    assert np.allclose(token_entropy_confidence(garbage, mask), ec)


def test_normalized_entropy_of_one_candidate_is_zero() -> None:
    assert normalized_entropy(np.array([[0.0, 1.0]]), np.array([[False, True]]))[0] == 0.0
