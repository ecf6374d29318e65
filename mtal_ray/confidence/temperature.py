"""Temperature scaling (Guo et al., 2017): optional post-hoc calibration fitted on dev.

A model's probabilities ``p`` are rescaled to ``softmax(log p / T)``. ``T > 1`` flattens
overconfident distributions, ``T < 1`` sharpens them, and the argmax never changes (so
predictions, DA and accuracy are untouched; only EC moves). ``T`` is the minimiser of the
negative log-likelihood of the gold labels on the development set; with ``β = 1/T`` that
NLL is convex (a log-sum-exp of a linear function of ``β`` minus a linear term), so its
derivative ``E_{p_β}[z] − z_gold`` is increasing and a bisection on it finds the optimum.

Labels with probability exactly 0 (padding, masked arcs) stay at 0 under any ``T``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["apply_temperature", "fit_temperature", "temperature_nll"]


def _log_probs(probs: npt.ArrayLike) -> npt.NDArray[np.float64]:
    p = np.asarray(probs, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.where(p > 0, np.log(np.where(p > 0, p, 1.0)), -np.inf)


def _tempered(logits: npt.NDArray[np.float64], beta: float) -> npt.NDArray[np.float64]:
    finite = np.isfinite(logits)
    z = np.where(finite, logits * beta, -np.inf)
    top = np.max(np.where(finite, z, -np.inf), axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    e = np.where(finite, np.exp(np.where(finite, z - top, 0.0)), 0.0)
    total = e.sum(axis=-1, keepdims=True)
    return np.divide(e, total, out=np.zeros_like(e), where=total > 0)


def apply_temperature(probs: npt.ArrayLike, temperature: float) -> npt.NDArray[np.float64]:
    """Rescale probability distributions (last axis) by a temperature.

    Parameters
    ----------
    probs : array_like, shape (..., s)
    temperature : float
        ``T > 0``; 1 leaves the distributions unchanged.

    Returns
    -------
    numpy.ndarray, shape (..., s)
        ``softmax(log p / T)``; all-zero rows stay zero.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return _tempered(_log_probs(probs), 1.0 / float(temperature))


def _select(
    probs: npt.ArrayLike, gold: npt.ArrayLike, mask: npt.ArrayLike | None
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Finite log-probs of the scored positions (rows) and their gold log-prob."""
    logits = _log_probs(probs)
    y = np.asarray(gold, dtype=np.int64)
    if logits.shape[:-1] != y.shape:
        raise ValueError(f"gold has shape {y.shape}, expected {logits.shape[:-1]}")
    keep = np.ones(y.shape, bool) if mask is None else np.asarray(mask, dtype=bool)
    if keep.shape != y.shape:
        raise ValueError(f"mask has shape {keep.shape}, expected {y.shape}")
    rows = logits[keep]
    labels = y[keep]
    if rows.shape[0] == 0:
        raise ValueError("temperature scaling needs at least one scored position")
    if labels.min() < 0 or labels.max() >= rows.shape[-1]:
        raise ValueError(f"gold labels must lie in [0, {rows.shape[-1]}), got {labels.min()}..")
    z_gold = rows[np.arange(len(labels)), labels]
    if not np.all(np.isfinite(z_gold)):
        bad = int((~np.isfinite(z_gold)).sum())
        raise ValueError(f"{bad} gold labels have probability 0; cannot fit a temperature")
    return rows, z_gold


def temperature_nll(
    probs: npt.ArrayLike,
    gold: npt.ArrayLike,
    temperature: float,
    mask: npt.ArrayLike | None = None,
) -> float:
    """Mean negative log-likelihood of ``gold`` under ``apply_temperature(probs, T)``.

    Parameters
    ----------
    probs : array_like, shape (..., s)
    gold : array_like of int, shape (...)
    temperature : float
    mask : array_like of bool, shape (...), optional
        Positions that count.
    """
    rows, z_gold = _select(probs, gold, mask)
    beta = 1.0 / float(temperature)
    finite = np.isfinite(rows)
    z = np.where(finite, rows * beta, -np.inf)
    top = z.max(axis=-1)
    lse = top + np.log(np.where(finite, np.exp(np.where(finite, z - top[:, None], 0.0)), 0).sum(-1))
    return float(np.mean(lse - beta * z_gold))


def fit_temperature(
    probs: npt.ArrayLike,
    gold: npt.ArrayLike,
    mask: npt.ArrayLike | None = None,
    bounds: tuple[float, float] = (0.05, 20.0),
    tol: float = 1e-6,
) -> float:
    """Temperature minimising the dev-set NLL of the gold labels.

    Parameters
    ----------
    probs : array_like, shape (..., s)
        Model probabilities on the development set (token tasks ``(n, m, s)``, ``dp``
        arcs ``(n, m, m + 1)``, ``id`` ``(n, s)``).
    gold : array_like of int, shape (...)
        Gold label (head) indices.
    mask : array_like of bool, shape (...), optional
        Positions that count (real words).
    bounds : (float, float)
        Search interval for ``T``; the optimum is clipped to it.
    tol : float
        Relative precision of ``T``.

    Returns
    -------
    float
        The fitted temperature.
    """
    rows, z_gold = _select(probs, gold, mask)
    finite = np.isfinite(rows)
    z0 = np.where(finite, rows, 0.0)

    def slope(beta: float) -> float:
        p = _tempered(rows, beta)
        return float(np.mean((p * z0).sum(-1) - z_gold))

    lo, hi = np.log(1.0 / bounds[1]), np.log(1.0 / bounds[0])  # log beta interval
    if slope(np.exp(lo)) >= 0:
        return float(bounds[1])
    if slope(np.exp(hi)) <= 0:
        return float(bounds[0])
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if slope(np.exp(mid)) < 0:
            lo = mid
        else:
            hi = mid
    return float(1.0 / np.exp(0.5 * (lo + hi)))
