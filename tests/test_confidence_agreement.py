"""Dropout agreement (DA): hand-computed values and the O(k·m) path vs eq. 3 literally."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtal_ray.confidence import agreeing_pairs, dropout_agreement, dropout_agreement_pairwise


def test_token_da_hand_computed() -> None:
    # k = 3 passes, one 2-word sentence plus a padded slot.
    # word 1: (a, a, b) -> 2 agreeing ordered pairs; word 2: (c, c, c) -> 6; total 8 / 12
    preds = np.array([[[0, 2, 9]], [[0, 2, 8]], [[1, 2, 7]]])
    mask = np.array([[True, True, False]])
    assert dropout_agreement(preds, mask) == pytest.approx([2 / 3])
    assert dropout_agreement_pairwise(preds, mask) == pytest.approx([2 / 3])


def test_sentence_da_hand_computed() -> None:
    # k = 4 intent predictions (1, 1, 2, 3): 2 agreeing ordered pairs of 12
    preds = np.array([[1, 5], [1, 5], [2, 5], [3, 5]])
    assert dropout_agreement(preds) == pytest.approx([1 / 6, 1.0])


def test_rows_without_positions_agree_fully() -> None:
    preds = np.zeros((2, 1, 3), int)
    assert dropout_agreement(preds, np.zeros((1, 3), bool)) == pytest.approx([1.0])


def test_needs_two_passes_and_integer_labels() -> None:
    with pytest.raises(ValueError, match="k >= 2"):
        dropout_agreement(np.zeros((1, 2, 2), int))
    with pytest.raises(ValueError, match="integer"):
        dropout_agreement(np.zeros((3, 2, 2)))


def test_agreeing_pairs_counts_labels() -> None:
    assert agreeing_pairs(np.array([[4], [4], [-1], [4]])).tolist() == [6]


@st.composite
def predictions_and_mask(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    k = draw(st.integers(2, 12))
    n = draw(st.integers(1, 5))
    m = draw(st.integers(1, 7))
    # small label spaces use the dense counter, large ones (dp heads) the sparse one
    labels = draw(st.sampled_from([1, 2, 3, 5, 40, 500]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    # concentrate mass so that agreement is neither always 0 nor always 1
    centre = rng.integers(0, labels, size=(1, n, m))
    noise = rng.integers(0, labels, size=(k, n, m))
    flip = rng.random((k, n, m)) < draw(st.floats(0, 1))
    preds = np.where(flip, noise, centre) - draw(st.integers(0, 3))
    mask = rng.random((n, m)) < 0.8
    return preds, mask


@settings(max_examples=300, deadline=None)
@given(predictions_and_mask())
def test_fast_path_equals_pairwise_definition(data: tuple[np.ndarray, np.ndarray]) -> None:
    preds, mask = data
    fast = dropout_agreement(preds, mask)
    slow = dropout_agreement_pairwise(preds, mask)
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)
    assert np.all((fast >= 0) & (fast <= 1))


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 10), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_sentence_level_fast_equals_pairwise(k: int, n: int, seed: int) -> None:
    preds = np.random.default_rng(seed).integers(0, 3, size=(k, n))
    np.testing.assert_allclose(dropout_agreement(preds), dropout_agreement_pairwise(preds))
