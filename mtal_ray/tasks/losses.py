"""Masked (label-smoothed) cross-entropy, the objective of every task head.

Label smoothing (Szegedy et al., 2016) with factor ``α`` replaces the one-hot target by
``(1 − α)·onehot(y) + α/K`` over the ``K`` *valid* candidates of a position, so

    loss = −(1 − α)·log p_y − (α/K)·Σ_k log p_k .

With ``α = 0`` this is the plain cross-entropy. Positions are averaged over the units
that carry a target (``mask`` true); when none do, the loss is an exact zero that is
still connected to the graph, so a task missing from a batch gets zero gradient (and
DDP still sees every parameter used).
"""

from __future__ import annotations

import torch


def smoothed_nll(
    logits: torch.Tensor,
    target: torch.Tensor,
    alpha: float,
    mask: torch.Tensor,
    candidates: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum and count of the label-smoothed cross-entropy over masked positions.

    Parameters
    ----------
    logits
        ``[..., K]`` unnormalized scores.
    target
        ``[...]`` gold class indices (any value where ``mask`` is false).
    alpha
        Label smoothing factor in ``[0, 1)``.
    mask
        ``[...]`` bool, positions that contribute.
    candidates
        Optional ``[..., K]`` bool: the classes a position may take (e.g. the real words
        of a sentence as candidate heads). Others get probability 0 and no smoothing mass.

    Returns
    -------
    (loss_sum, count)
        Scalar tensors; ``loss_sum / count.clamp(min=1)`` is the mean.
    """
    if candidates is not None:
        logits = logits.masked_fill(~candidates, torch.finfo(logits.dtype).min)
    log_probs = torch.log_softmax(logits, dim=-1)
    safe_target = torch.where(mask, target, torch.zeros_like(target))
    nll = -log_probs.gather(-1, safe_target.unsqueeze(-1)).squeeze(-1)
    if alpha > 0:
        if candidates is None:
            uniform = -log_probs.mean(dim=-1)
        else:
            n_cand = candidates.sum(dim=-1).clamp(min=1)
            uniform = -(log_probs * candidates).sum(dim=-1) / n_cand
        nll = (1.0 - alpha) * nll + alpha * uniform
    maskf = mask.to(nll.dtype)
    return (nll * maskf).sum(), maskf.sum()


def masked_mean(loss_sum: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """``loss_sum / count``, or an exact (graph-connected) zero when ``count`` is 0."""
    return loss_sum / count.clamp(min=1.0)
