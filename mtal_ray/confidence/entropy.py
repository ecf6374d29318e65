"""Entropy-based confidence (EC), paper eq. 1–2.

``EC(x) = 1 − E(x)`` where ``E(x)`` is the average, over the scored positions of sentence
``x``, of each position's entropy divided by the log of the number of labels that position
could take. Every function here is pure numpy over padded batches:

========================  =====================================  ==========================
task                      positions                              candidates per position
========================  =====================================  ==========================
token tagging (ner, sf)   words                                  all ``s`` labels
sentence (id)             the sentence itself                    all ``s`` classes
dependency (dp)           dependents (the *unlabeled* edges)     root + the other words
relations (re)            candidate entity pairs                 relation types + "none"
========================  =====================================  ==========================

For token tagging with a fixed label set this is exactly eq. 2
(``−1/(m·log s) Σ_i Σ_j p log p``). For ``dp`` each dependent's arc distribution over its
``n`` candidate heads (the root and the ``n − 1`` other words of an ``n``-word sentence) is
normalized by ``log n``, so a 3-word and a 40-word sentence are on the same 0–1 scale.
For ``re`` (our analogue; the paper does not spell it out) each candidate entity pair has
a distribution over the relation types plus "no relation", normalized by the log of that
count; the sentence score averages over the candidate pairs.

Conventions shared by all functions:

* A position with a single candidate (a one-word sentence's only arc goes to the root)
  has entropy 0: the model has no choice to be uncertain about.
* A row with no scored positions (e.g. a sentence with fewer than two predicted entities
  has no relation candidates) gets confidence 1.0; the caller keeps the position counts
  (``n_tokens``, ``re.n_pairs``) next to the score so a selector can tell these rows apart.
* Probability mass outside the candidates (padding, a dependent's own column) is dropped
  and the rest renormalized; a well-formed model puts none there.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = [
    "arc_candidate_mask",
    "class_entropy_confidence",
    "normalized_entropy",
    "pair_entropy_confidence",
    "token_entropy_confidence",
    "tree_entropy_confidence",
]


def _as_mask(mask: npt.ArrayLike, shape: tuple[int, ...], name: str) -> npt.NDArray[np.bool_]:
    out = np.asarray(mask, dtype=bool)
    if out.shape != shape:
        raise ValueError(f"{name} has shape {out.shape}, expected {shape}")
    return out


def normalized_entropy(
    probs: npt.ArrayLike, candidates: npt.ArrayLike | None = None
) -> npt.NDArray[np.float64]:
    """Entropy of each distribution over its candidates, divided by log(#candidates).

    Parameters
    ----------
    probs : array_like, shape (..., s)
        Probabilities over ``s`` labels (rows need not sum to one outside the candidates).
    candidates : array_like of bool, shape (..., s), optional
        Which labels are possible at each position; all of them when omitted. The
        probabilities are renormalized over the candidates.

    Returns
    -------
    numpy.ndarray, shape (...)
        Values in [0, 1]; 0 where a position has at most one candidate or no mass.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim < 1:
        raise ValueError("probs needs a label axis")
    if candidates is None:
        cand = np.ones(p.shape, dtype=bool)
    else:
        cand = _as_mask(candidates, p.shape, "candidates")
    p = np.where(cand, np.clip(p, 0.0, None), 0.0)
    total = p.sum(axis=-1, keepdims=True)
    p = np.divide(p, total, out=np.zeros_like(p), where=total > 0)
    plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    entropy = -plogp.sum(axis=-1)
    n_cand = cand.sum(axis=-1)
    log_n = np.log(np.maximum(n_cand, 1))
    out = np.divide(entropy, log_n, out=np.zeros_like(entropy), where=n_cand > 1)
    return np.clip(out, 0.0, 1.0)


def _mean_confidence(
    entropy: npt.NDArray[np.float64], mask: npt.NDArray[np.bool_]
) -> npt.NDArray[np.float64]:
    """1 − mean entropy over the masked positions of each row (1.0 for empty rows)."""
    count = mask.sum(axis=-1)
    total = np.where(mask, entropy, 0.0).sum(axis=-1)
    mean = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    return 1.0 - mean


def token_entropy_confidence(
    probs: npt.ArrayLike, mask: npt.ArrayLike | None = None
) -> npt.NDArray[np.float64]:
    """EC of a token-tagging task (NER, SF), paper eq. 1–2.

    Parameters
    ----------
    probs : array_like, shape (n, m, s)
        Per-word label probabilities of ``n`` sentences padded to ``m`` words.
    mask : array_like of bool, shape (n, m), optional
        True on real words; all positions when omitted.

    Returns
    -------
    numpy.ndarray, shape (n,)
        ``1 − 1/(m_x log s) Σ_i H(p_i)`` per sentence.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 3:
        raise ValueError(f"token probs must be (n, m, s), got shape {p.shape}")
    m = np.ones(p.shape[:2], bool) if mask is None else _as_mask(mask, p.shape[:2], "mask")
    return _mean_confidence(normalized_entropy(p), m)


def class_entropy_confidence(probs: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """EC of a sentence-classification task (ID): 1 − H(p) / log(#classes).

    Parameters
    ----------
    probs : array_like, shape (n, s)

    Returns
    -------
    numpy.ndarray, shape (n,)
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"class probs must be (n, s), got shape {p.shape}")
    return 1.0 - normalized_entropy(p)


def arc_candidate_mask(mask: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Candidate heads of every dependent: the root and the other real words.

    Parameters
    ----------
    mask : array_like of bool, shape (n, m)
        True on real words.

    Returns
    -------
    numpy.ndarray of bool, shape (n, m, m + 1)
        ``out[b, i, 0]`` is the root, ``out[b, i, j]`` word ``j`` (1-based, CoNLL-U HEAD);
        False for padding, for a dependent's own column and for padded dependents.
    """
    words = np.asarray(mask, dtype=bool)
    if words.ndim != 2:
        raise ValueError(f"mask must be (n, m), got shape {words.shape}")
    n, m = words.shape
    heads = np.concatenate([np.ones((n, 1), bool), words], axis=1)  # (n, m+1)
    cand = words[:, :, None] & heads[:, None, :]
    idx = np.arange(m)
    cand[:, idx, idx + 1] = False
    return cand


def tree_entropy_confidence(
    arc_probs: npt.ArrayLike, mask: npt.ArrayLike | None = None
) -> npt.NDArray[np.float64]:
    """EC of dependency parsing over the unlabeled edges (paper §5.4).

    Parameters
    ----------
    arc_probs : array_like, shape (n, m, m + 1)
        ``arc_probs[b, i, h]``: probability that word ``i`` (0-based) attaches to head
        ``h`` (0 = root, ``j`` = word ``j``, 1-based as CoNLL-U HEAD).
    mask : array_like of bool, shape (n, m), optional
        True on real words; all positions when omitted.

    Returns
    -------
    numpy.ndarray, shape (n,)
        1 − mean over dependents of H(arcs_i) / log(#candidate heads); an ``L``-word
        sentence has ``L`` candidate heads per dependent.
    """
    p = np.asarray(arc_probs, dtype=np.float64)
    if p.ndim != 3 or p.shape[2] != p.shape[1] + 1:
        raise ValueError(f"arc probs must be (n, m, m + 1), got shape {p.shape}")
    words = np.ones(p.shape[:2], bool) if mask is None else _as_mask(mask, p.shape[:2], "mask")
    return _mean_confidence(normalized_entropy(p, arc_candidate_mask(words)), words)


def pair_entropy_confidence(
    pair_probs: npt.ArrayLike, pair_mask: npt.ArrayLike | None = None
) -> npt.NDArray[np.float64]:
    """EC of relation extraction over candidate entity pairs (our analogue of eq. 2).

    Parameters
    ----------
    pair_probs : array_like, shape (n, p, r)
        For each of up to ``p`` candidate (ordered) pairs of predicted entities, the
        distribution over ``r`` outcomes: the relation types and "no relation".
    pair_mask : array_like of bool, shape (n, p), optional
        True on real pairs.

    Returns
    -------
    numpy.ndarray, shape (n,)
        1 − mean over pairs of H / log r; 1.0 for sentences without candidate pairs.
    """
    p = np.asarray(pair_probs, dtype=np.float64)
    if p.ndim != 3:
        raise ValueError(f"pair probs must be (n, p, r), got shape {p.shape}")
    m = (
        np.ones(p.shape[:2], bool)
        if pair_mask is None
        else _as_mask(pair_mask, p.shape[:2], "pair_mask")
    )
    return _mean_confidence(normalized_entropy(p), m)
