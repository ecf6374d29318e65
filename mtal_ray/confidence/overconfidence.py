"""Overconfidence error (OE), paper §5.5 (after Thulasidasan et al., 2019).

``OE = 1/N Σ_x conf(x) · max(conf(x) − acc(x), 0)``: only sentences whose confidence
exceeds their accuracy are penalised, by the gap weighted by the confidence. It needs gold
labels, so it is a simulation-time diagnostic. ``acc(x)`` is the token accuracy of the
sentence (attachment accuracy of the unlabeled edges for ``dp``, 0/1 for ``id``), computed
by :func:`sentence_accuracy`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["overconfidence_error", "sentence_accuracy"]


def sentence_accuracy(
    predicted: npt.ArrayLike, gold: npt.ArrayLike, mask: npt.ArrayLike | None = None
) -> npt.NDArray[np.float64]:
    """Fraction of correctly predicted positions of each sentence.

    Parameters
    ----------
    predicted, gold : array_like of int, shape (n, m) or (n,)
        Predicted and gold labels (heads for ``dp``); ``(n,)`` for classification.
    mask : array_like of bool, shape (n, m), optional
        True on real positions.

    Returns
    -------
    numpy.ndarray, shape (n,)
        Accuracy per sentence; 1.0 for a sentence without positions.
    """
    pred = np.asarray(predicted)
    ref = np.asarray(gold)
    if pred.shape != ref.shape:
        raise ValueError(f"predicted {pred.shape} and gold {ref.shape} shapes differ")
    if pred.ndim == 1:
        pred, ref = pred[:, None], ref[:, None]
    m = np.ones(pred.shape, bool) if mask is None else np.asarray(mask, dtype=bool)
    if m.shape != pred.shape:
        raise ValueError(f"mask has shape {m.shape}, expected {pred.shape}")
    correct = ((pred == ref) & m).sum(axis=1).astype(np.float64)
    count = m.sum(axis=1)
    return np.divide(correct, count, out=np.ones_like(correct), where=count > 0)


def overconfidence_error(confidence: npt.ArrayLike, accuracy: npt.ArrayLike) -> float:
    """OE of §5.5 over ``N`` sentences.

    Parameters
    ----------
    confidence : array_like, shape (N,)
        Sentence confidence scores (EC, DA, or an MT aggregate) in [0, 1].
    accuracy : array_like, shape (N,)
        Sentence accuracies in [0, 1].

    Returns
    -------
    float
        ``mean(conf · max(conf − acc, 0))``.
    """
    conf = np.asarray(confidence, dtype=np.float64)
    acc = np.asarray(accuracy, dtype=np.float64)
    if conf.shape != acc.shape or conf.ndim != 1:
        raise ValueError(f"confidence {conf.shape} and accuracy {acc.shape} must be equal 1-D")
    if conf.size == 0:
        raise ValueError("overconfidence error of an empty set is undefined")
    return float(np.mean(conf * np.maximum(conf - acc, 0.0)))
