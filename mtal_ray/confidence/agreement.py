"""Dropout agreement (DA), paper eq. 3.

``DA(x) = 1/(m·k·(k−1)) Σ_{j≠j'} Σ_i 1[ŷ_i^j = ŷ_i^j']`` over ``k`` MC-dropout passes.

The double sum over ordered pairs of passes is ``O(k²·m)`` when written as a loop. For one
position with label counts ``c_l`` (how many passes predicted label ``l``) the number of
agreeing ordered pairs is ``Σ_l c_l (c_l − 1)``, so :func:`dropout_agreement` only counts
labels: ``O(k·m)`` work plus a count table. :func:`dropout_agreement_pairwise` keeps the
literal definition as the reference the tests compare against.

The predictions are integers whatever the task: label ids for tagging and classification,
head indices for dependency parsing (agreement on the unlabeled edges), relation ids for
candidate entity pairs. Sentence classification is the ``m = 1`` case (paper footnote 3).
A row with no scored positions gets agreement 1.0.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["agreeing_pairs", "dropout_agreement", "dropout_agreement_pairwise"]

#: Above this many count cells per prediction the sparse (sort-based) counter is used.
_DENSE_CELLS_PER_PREDICTION = 8


def _check(
    predictions: npt.ArrayLike, mask: npt.ArrayLike | None
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    pred = np.asarray(predictions)
    if pred.ndim == 2:  # sentence classification: (k, n) -> (k, n, 1)
        pred = pred[:, :, None]
    if pred.ndim != 3:
        raise ValueError(f"predictions must be (k, n, m) or (k, n), got shape {pred.shape}")
    if not np.issubdtype(pred.dtype, np.integer):
        raise ValueError(f"predictions must be integer labels, got dtype {pred.dtype}")
    if pred.shape[0] < 2:
        raise ValueError(f"dropout agreement needs k >= 2 passes, got k={pred.shape[0]}")
    shape = pred.shape[1:]
    m = np.ones(shape, bool) if mask is None else np.asarray(mask, dtype=bool)
    if m.ndim == 1 and len(shape) == 2 and shape[1] == 1:
        m = m[:, None]
    if m.shape != shape:
        raise ValueError(f"mask has shape {m.shape}, expected {shape}")
    return pred.astype(np.int64, copy=False), m


def agreeing_pairs(predictions: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Number of ordered pairs of passes that agree, per position, from label counts.

    Parameters
    ----------
    predictions : array_like of int, shape (k, ...)
        ``k`` predictions for every position.

    Returns
    -------
    numpy.ndarray of int, shape (...)
        ``Σ_l c_l (c_l − 1)`` where ``c_l`` counts the passes predicting label ``l``.
    """
    pred = np.asarray(predictions, dtype=np.int64)
    k = pred.shape[0]
    out_shape = pred.shape[1:]
    flat = pred.reshape(k, -1)
    n_pos = flat.shape[1]
    if n_pos == 0 or k == 0:
        return np.zeros(out_shape, np.int64)
    low = int(flat.min())
    flat = flat - low  # labels may be any integers (e.g. -1 for "no prediction")
    n_labels = int(flat.max()) + 1
    keys = np.arange(n_pos, dtype=np.int64)[None, :] * n_labels + flat
    if n_labels <= _DENSE_CELLS_PER_PREDICTION * k:
        counts = np.bincount(keys.ravel(), minlength=n_pos * n_labels).reshape(n_pos, n_labels)
        pairs = (counts * (counts - 1)).sum(axis=1)
    else:  # large label space (dp heads): count only the labels that occur
        uniq, counts = np.unique(keys.ravel(), return_counts=True)
        pairs = np.bincount(uniq // n_labels, weights=counts * (counts - 1), minlength=n_pos)
    return pairs.astype(np.int64).reshape(out_shape)


def dropout_agreement(
    predictions: npt.ArrayLike, mask: npt.ArrayLike | None = None
) -> npt.NDArray[np.float64]:
    """DA of eq. 3 from label counts (``O(k·m)``).

    Parameters
    ----------
    predictions : array_like of int, shape (k, n, m) or (k, n)
        Predicted label (or head) of each of ``k`` passes for ``n`` sentences padded to
        ``m`` positions; ``(k, n)`` for sentence classification.
    mask : array_like of bool, shape (n, m), optional
        True on real positions.

    Returns
    -------
    numpy.ndarray, shape (n,)
        Values in [0, 1]; 1.0 for rows without positions.
    """
    pred, m = _check(predictions, mask)
    k = pred.shape[0]
    pairs = np.where(m, agreeing_pairs(pred), 0).sum(axis=1).astype(np.float64)
    denom = m.sum(axis=1) * k * (k - 1)
    return np.divide(pairs, denom, out=np.ones_like(pairs), where=denom > 0)


def dropout_agreement_pairwise(
    predictions: npt.ArrayLike, mask: npt.ArrayLike | None = None
) -> npt.NDArray[np.float64]:
    """DA of eq. 3 written literally as the ``O(k²·m)`` loop over pairs of passes.

    Same parameters and result as :func:`dropout_agreement`; kept as its reference.
    """
    pred, m = _check(predictions, mask)
    k = pred.shape[0]
    total = np.zeros(pred.shape[1], np.float64)
    for j in range(k):
        for j2 in range(k):
            if j != j2:
                total += ((pred[j] == pred[j2]) & m).sum(axis=1)
    denom = m.sum(axis=1) * k * (k - 1)
    return np.divide(total, denom, out=np.ones_like(total), where=denom > 0)
