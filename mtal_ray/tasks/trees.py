"""Maximum spanning tree decoding of dependency arcs (Chu-Liu-Edmonds).

The parser decodes to the highest-scoring well-formed tree: every word has exactly one
head, there are no cycles, and exactly one word is attached to the root (UD's rule).
Non-projective trees are allowed (Chu-Liu-Edmonds, not Eisner), which matches UD.

The single-root constraint is exact, not a heuristic: every root arc is penalized by a
constant larger than any score difference, so the best arborescence uses as few root
arcs as possible (one), and among those it is the best tree.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["decode_tree", "tree_score"]


def _find_cycle(heads: npt.NDArray[np.int64]) -> list[int] | None:
    """A cycle of the head graph (node 0 is the root, ``heads[0] = -1``), or None."""
    n = len(heads)
    state = np.zeros(n, dtype=np.int8)  # 0 unseen, 1 on current path, 2 done
    for start in range(1, n):
        path: list[int] = []
        node = start
        while node > 0 and state[node] == 0:
            state[node] = 1
            path.append(node)
            node = int(heads[node])
        if node > 0 and state[node] == 1:
            return path[path.index(node) :]
        for visited in path:
            state[visited] = 2
    return None


def _arborescence(scores: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Chu-Liu-Edmonds on ``scores[head, dependent]`` rooted at node 0."""
    n = scores.shape[0]
    s = scores.copy()
    np.fill_diagonal(s, -np.inf)
    s[:, 0] = -np.inf
    heads = s.argmax(axis=0).astype(np.int64)
    heads[0] = -1
    cycle = _find_cycle(heads)
    if cycle is None:
        return heads
    in_cycle = np.zeros(n, dtype=bool)
    in_cycle[cycle] = True
    cyc = np.asarray(cycle)
    others = np.flatnonzero(~in_cycle)  # others[0] == 0: the root is never in a cycle
    m = len(others)
    contracted = np.full((m + 1, m + 1), -np.inf)
    contracted[:m, :m] = s[np.ix_(others, others)]
    # entering the cycle at c replaces c's cycle arc
    enter = s[np.ix_(others, cyc)] - s[heads[cyc], cyc][None, :]
    best_enter = enter.argmax(axis=1)
    contracted[:m, m] = enter[np.arange(m), best_enter]
    leave = s[np.ix_(cyc, others)]
    best_leave = leave.argmax(axis=0)
    contracted[m, :m] = leave[best_leave, np.arange(m)]
    sub = _arborescence(contracted)
    result = heads.copy()
    for i in range(1, m):
        h = sub[i]
        result[others[i]] = others[h] if h < m else cyc[best_leave[i]]
    u = sub[m]
    result[cyc[best_enter[u]]] = others[u]
    return result


def decode_tree(arc_scores: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Best single-rooted dependency tree.

    Parameters
    ----------
    arc_scores
        ``[n, n + 1]`` scores (e.g. log-probabilities) of dependent ``i`` (word ``i + 1``)
        taking candidate head ``j`` (0 = root, ``j`` = word ``j``), as produced by the
        ``dp`` head for one sentence of ``n`` words. Self-loop entries are ignored; keep
        the other scores in a moderate range (e.g. log-probabilities clamped at -1e4),
        since the root penalty is derived from their spread.

    Returns
    -------
    numpy.ndarray
        ``[n]`` heads in CoNLL-U convention (1-based word index, 0 = root).
    """
    arcs = np.asarray(arc_scores, dtype=np.float64)
    n = arcs.shape[0]
    if arcs.shape != (n, n + 1):
        raise ValueError(f"arc scores have shape {arcs.shape}, expected ({n}, {n + 1})")
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    scores = np.full((n + 1, n + 1), -np.inf)
    scores[:, 1:] = arcs.T
    offdiag = ~np.eye(n, n + 1, k=1, dtype=bool)  # a word is not its own head
    finite = arcs[offdiag & np.isfinite(arcs)]
    penalty = 1.0 + (n + 1) * (float(finite.max() - finite.min()) if finite.size else 0.0)
    scores[0, 1:] -= penalty
    return _arborescence(scores)[1:]


def tree_score(arc_scores: npt.ArrayLike, heads: npt.ArrayLike) -> float:
    """Total score of a head assignment under ``[n, n + 1]`` arc scores."""
    arcs = np.asarray(arc_scores, dtype=np.float64)
    heads = np.asarray(heads, dtype=np.int64)
    return float(arcs[np.arange(len(heads)), heads].sum())
