"""Overconfidence error and temperature scaling."""

from __future__ import annotations

import numpy as np
import pytest

from mtal_ray.confidence import (
    apply_temperature,
    fit_temperature,
    overconfidence_error,
    sentence_accuracy,
    temperature_nll,
)


def test_oe_hand_computed() -> None:
    # only the first sentence is overconfident: 0.9 * (0.9 - 0.6) / 2
    assert overconfidence_error([0.9, 0.5], [0.6, 0.8]) == pytest.approx(0.135)
    assert overconfidence_error([0.2, 0.4], [0.6, 0.8]) == 0.0


def test_sentence_accuracy_hand_computed() -> None:
    pred = np.array([[1, 2, 3], [1, 1, 0]])
    gold = np.array([[1, 0, 3], [2, 2, 5]])
    mask = np.array([[1, 1, 1], [1, 1, 0]], bool)
    assert sentence_accuracy(pred, gold, mask) == pytest.approx([2 / 3, 0.0])
    assert sentence_accuracy(np.array([3, 4]), np.array([3, 1])) == pytest.approx([1.0, 0.0])


def test_oe_rejects_mismatched_or_empty() -> None:
    with pytest.raises(ValueError):
        overconfidence_error([0.5], [0.5, 0.5])
    with pytest.raises(ValueError):
        overconfidence_error([], [])


def test_apply_temperature_hand_computed_and_keeps_zeros_and_argmax() -> None:
    p = np.array([[0.8, 0.2, 0.0]])
    # T = 0.5 squares the odds: 0.64 / (0.64 + 0.04)
    out = apply_temperature(p, 0.5)
    assert out[0] == pytest.approx([0.64 / 0.68, 0.04 / 0.68, 0.0])
    assert np.allclose(apply_temperature(p, 1.0), p)
    hot = apply_temperature(p, 3.0)
    assert hot[0, 2] == 0.0 and hot.argmax(-1)[0] == 0 and hot[0, 0] < 0.8


def test_fit_recovers_the_temperature_of_an_overconfident_model() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3.0, size=(20000, 5))
    true = np.exp(logits / 2.0)
    true /= true.sum(-1, keepdims=True)
    gold = (rng.random((20000, 1)) > true.cumsum(-1)).sum(-1)
    model = np.exp(logits)
    model /= model.sum(-1, keepdims=True)  # twice as sharp as the truth
    t = fit_temperature(model, gold)
    assert t == pytest.approx(2.0, rel=0.05)
    nll = temperature_nll(model, gold, t)
    assert nll <= temperature_nll(model, gold, t * 1.02)
    assert nll <= temperature_nll(model, gold, t / 1.02)


def test_fit_on_padded_arcs_ignores_padding() -> None:
    rng = np.random.default_rng(1)
    arcs = rng.dirichlet(np.ones(4), size=(50, 3))
    gold = rng.integers(0, 4, size=(50, 3))
    mask = np.ones((50, 3), bool)
    mask[:, 2] = False
    padded_gold = gold.copy()
    padded_gold[:, 2] = 0
    t = fit_temperature(arcs, padded_gold, mask)
    assert t == pytest.approx(fit_temperature(arcs[:, :2], gold[:, :2]), rel=1e-6)


def test_fit_rejects_gold_with_zero_probability() -> None:
    with pytest.raises(ValueError, match="probability 0"):
        fit_temperature(np.array([[1.0, 0.0]]), np.array([1]))
