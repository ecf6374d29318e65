"""Task weights: the paper's β generalised to a weight vector over T tasks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from mtal_ray.errors import SelectionError


def resolve_weights(
    tasks: Sequence[str],
    *,
    weights: Mapping[str, float] | None = None,
    beta: float | None = None,
    task: str | None = None,
) -> NDArray[np.float64]:
    """Turn ``weights`` or ``beta``+``task`` into a normalised weight vector.

    ``beta`` on ``task`` is the paper's two-task shorthand (§6.1): weight β on ``task`` and
    1 − β shared equally by the other tasks. ``weights`` may name a subset of the tasks
    (unnamed tasks weigh 0) and is normalised to sum 1. With neither, weights are uniform.

    Parameters
    ----------
    tasks : sequence of str
        The table's tasks, in order.
    weights : mapping of str to float, optional
    beta : float, optional
        In [0, 1]; needs ``task``.
    task : str, optional

    Returns
    -------
    ndarray, shape (T,)
        Non-negative weights summing to 1, in task order.
    """
    n_tasks = len(tasks)
    if weights is not None and beta is not None:
        raise SelectionError("give either weights or beta (with task), not both")
    if beta is not None:
        if not 0.0 <= beta <= 1.0 or not np.isfinite(beta):
            raise SelectionError(f"beta must lie in [0, 1], got {beta}")
        if task is None:
            raise SelectionError("beta needs task: the task that gets weight beta")
        if task not in tasks:
            raise SelectionError(f"unknown task {task!r}; tasks are {', '.join(tasks)}")
        if n_tasks == 1:
            return np.ones(1)
        w = np.full(n_tasks, (1.0 - beta) / (n_tasks - 1))
        w[list(tasks).index(task)] = beta
        return w
    if weights is None:
        return np.full(n_tasks, 1.0 / n_tasks)
    unknown = [t for t in weights if t not in tasks]
    if unknown:
        raise SelectionError(
            f"weights name unknown task(s) {unknown}; tasks are {', '.join(tasks)}"
        )
    w = np.array([float(weights.get(t, 0.0)) for t in tasks])
    if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise SelectionError(
            f"weights must be non-negative with a positive sum, got {dict(weights)}"
        )
    return w / w.sum()


def is_uniform(w: NDArray[np.float64]) -> bool:
    """Whether ``w`` gives every task the same weight."""
    return bool(np.allclose(w, w[0], rtol=0, atol=1e-12))


def parse_weights(text: str) -> dict[str, float]:
    """Parse ``"re=0.7,ner=0.3"`` into ``{"re": 0.7, "ner": 0.3}``."""
    out: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise SelectionError(
                f"bad weights {text!r}: expected task=weight pairs like 're=0.7,ner=0.3'"
            ) from None
    return out
