"""Learning curves: task score against labeled-set size."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from mtal_ray.data.atomic import atomic_path


def plot_learning_curve(
    sizes: Sequence[int],
    scores: Mapping[str, Mapping[str, Sequence[float]]],
    path: Path,
    title: str = "",
    stops: Mapping[str, int] | None = None,
) -> Path:
    """Write a PNG with one panel per task and one line per split.

    Parameters
    ----------
    sizes
        Labeled-set size at each iteration.
    scores
        ``{task: {"dev": [...], "test": [...]}}`` aligned with ``sizes``.
    stops
        Labeled-set size at which a task stopped being annotated (a dashed marker).
    """
    tasks = list(scores)
    fig, axes = plt.subplots(1, max(1, len(tasks)), figsize=(4.2 * max(1, len(tasks)), 3.4))
    axes = [axes] if len(tasks) <= 1 else list(axes)
    for ax, task in zip(axes, tasks, strict=False):
        for split, values in scores[task].items():
            xs = list(sizes)[: len(values)]
            ax.plot(xs, values, marker="o", label=split)
        if stops and task in stops:
            ax.axvline(stops[task], color="grey", linestyle="--", label="stopped")
        ax.set_title(task)
        ax.set_xlabel("labeled sentences")
        ax.set_ylabel("score")
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110)
    finally:
        plt.close(fig)
    return path
