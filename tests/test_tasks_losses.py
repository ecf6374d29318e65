"""Label-smoothed cross-entropy against the formula, masking and zero-count behaviour."""

from __future__ import annotations

import math

import pytest
import torch

from mtal_ray.tasks.losses import masked_mean, smoothed_nll


def test_label_smoothing_matches_formula_on_hand_made_example() -> None:
    # p = softmax([ln 1, ln 2, ln 5]) = [0.125, 0.25, 0.625]; gold class 2; alpha = 0.2
    logits = torch.log(torch.tensor([[1.0, 2.0, 5.0]]))
    target = torch.tensor([2])
    loss_sum, count = smoothed_nll(logits, target, 0.2, torch.tensor([True]))
    expected = -(0.8 * math.log(0.625)) - (0.2 / 3) * (
        math.log(0.125) + math.log(0.25) + math.log(0.625)
    )
    assert count.item() == 1
    assert loss_sum.item() == pytest.approx(expected, rel=1e-6)


def test_label_smoothing_equals_torch_reference() -> None:
    torch.manual_seed(0)
    logits = torch.randn(7, 5)
    target = torch.randint(0, 5, (7,))
    loss_sum, count = smoothed_nll(logits, target, 0.1, torch.ones(7, dtype=torch.bool))
    reference = torch.nn.functional.cross_entropy(logits, target, label_smoothing=0.1)
    assert (loss_sum / count).item() == pytest.approx(reference.item(), rel=1e-5)


def test_alpha_zero_is_cross_entropy_and_mask_drops_positions() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 3.0], [5.0, -5.0]])
    target = torch.tensor([0, 1, 1])
    mask = torch.tensor([True, True, False])
    loss_sum, count = smoothed_nll(logits, target, 0.0, mask)
    expected = -math.log(math.exp(2) / (math.exp(2) + 1)) - math.log(
        math.exp(3) / (math.exp(3) + 1)
    )
    assert count.item() == 2
    assert loss_sum.item() == pytest.approx(expected, rel=1e-6)


def test_candidates_restrict_softmax_and_smoothing_mass() -> None:
    # only classes 0 and 1 are candidates: class 2 gets no probability and no smoothing
    logits = torch.tensor([[0.0, 0.0, 100.0]])
    candidates = torch.tensor([[True, True, False]])
    loss_sum, _ = smoothed_nll(
        logits, torch.tensor([0]), 0.2, torch.tensor([True]), candidates=candidates
    )
    assert loss_sum.item() == pytest.approx(math.log(2), rel=1e-6)


def test_no_annotated_unit_gives_connected_zero_and_zero_gradient() -> None:
    logits = torch.randn(3, 4, requires_grad=True)
    loss = masked_mean(
        *smoothed_nll(
            logits, torch.zeros(3, dtype=torch.long), 0.2, torch.zeros(3, dtype=torch.bool)
        )
    )
    assert loss.item() == 0.0
    loss.backward()
    assert logits.grad is not None
    assert torch.count_nonzero(logits.grad) == 0
