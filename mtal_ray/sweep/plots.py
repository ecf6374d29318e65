"""The sweep report's figures (matplotlib, Agg backend, written atomically)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from mtal_ray.data.atomic import atomic_path
from mtal_ray.sweep.series import Column, Curve, GainCurve, ScoreTable


def _panels(count: int, width: float = 4.2, height: float = 3.4) -> tuple[Any, list[Any]]:
    cols = min(3, max(1, count))
    rows = math.ceil(max(1, count) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[count:]:
        ax.set_visible(False)
    return fig, flat[:count]


def _save(fig: Any, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def plot_learning_curves(
    series: Mapping[Column, Mapping[str, Curve]], path: Path, title: str = "", scale: float = 1.0
) -> Path:
    """One panel per (dataset, task), one line per method (mean over seeds, ±std band)."""
    fig, axes = _panels(len(series))
    for ax, (column, curves) in zip(axes, series.items(), strict=True):
        for label, curve in curves.items():
            mean = [m * scale for m in curve.mean]
            (line,) = ax.plot(curve.sizes, mean, marker="o", markersize=3, label=label)
            if any(s > 0 for s in curve.std):
                low = [m - s * scale for m, s in zip(mean, curve.std, strict=True)]
                high = [m + s * scale for m, s in zip(mean, curve.std, strict=True)]
                ax.fill_between(curve.sizes, low, high, color=line.get_color(), alpha=0.15)
        ax.set_title(ScoreTable.column_name(column))
        ax.set_xlabel("labeled sentences")
        ax.set_ylabel("score")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(f"{title}: learning curves")
    fig.tight_layout()
    return _save(fig, path)


def plot_overlap(
    matrices: Mapping[str | None, tuple[Sequence[str], Sequence[Sequence[float | None]]]],
    path: Path,
    title: str = "",
    scale: float = 1.0,
) -> Path:
    """Heat map per dataset: % of shared samples in the first selection, per method pair."""
    del scale  # overlaps are always shown as percentages
    largest = max(len(labels) for labels, _ in matrices.values())
    side = max(3.5, 0.55 * largest + 2)
    fig, axes = _panels(len(matrices), width=side + 0.8, height=side)
    for ax, (dataset, (labels, matrix)) in zip(axes, matrices.items(), strict=True):
        grid = [[math.nan if v is None else 100 * v for v in row] for row in matrix]
        image = ax.imshow(grid, vmin=0, vmax=100, cmap="viridis")
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        for i, row in enumerate(grid):
            for j, value in enumerate(row):
                if not math.isnan(value):
                    color = "black" if value > 60 else "white"
                    ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=7, color=color)
        ax.set_title(dataset or "first selection")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="% shared")
    if title:
        fig.suptitle(f"{title}: overlap of selected samples after round 1")
    fig.tight_layout()
    return _save(fig, path)


def plot_beta(
    series: Mapping[Column, Mapping[str, Sequence[tuple[float, float, float]]]],
    path: Path,
    title: str = "",
    scale: float = 1.0,
    references: Mapping[Column, Mapping[str, tuple[float, float]]] | None = None,
) -> Path:
    """One panel per (dataset, task): final score against β, one line per method.

    A dashed black line shows the average over the β methods (the paper's Figure 6);
    methods run without β (``references``, e.g. MT-R) are dotted horizontal lines.
    """
    fig, axes = _panels(len(series))
    for ax, (column, lines) in zip(axes, series.items(), strict=True):
        for label, (mean, _std) in (references or {}).get(column, {}).items():
            ax.axhline(mean * scale, linestyle=":", color="gray", label=label)
        by_beta: dict[float, list[float]] = {}
        for label, points in lines.items():
            betas = [p[0] for p in points]
            means = [p[1] * scale for p in points]
            stds = [p[2] * scale for p in points]
            ax.errorbar(betas, means, yerr=stds, marker="o", markersize=3, capsize=2, label=label)
            for b, m in zip(betas, means, strict=True):
                by_beta.setdefault(b, []).append(m)
        if len(lines) > 1:
            betas = sorted(by_beta)
            ax.plot(
                betas,
                [sum(by_beta[b]) / len(by_beta[b]) for b in betas],
                "k--",
                label="average",
            )
        ax.set_title(ScoreTable.column_name(column))
        ax.set_xlabel("β")
        ax.set_ylabel("final score")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(f"{title}: final score against β")
    fig.tight_layout()
    return _save(fig, path)


def plot_reference_gains(
    series: Mapping[Column, Mapping[str, GainCurve]],
    path: Path,
    title: str = "",
    scale: float = 1.0,
) -> Path:
    """One panel per (dataset, task or geometric mean): each method's gain over MT-R.

    The mean paired difference (method − MT-R, same seed) per iteration against the
    labeled-set size, with its bootstrap interval over seeds as a band; 0 is dashed.
    """
    fig, axes = _panels(len(series))
    for ax, (column, curves) in zip(axes, series.items(), strict=True):
        ax.axhline(0.0, linestyle="--", color="black", linewidth=1, label="MT-R")
        for label, curve in curves.items():
            mean = [g.mean * scale for g in curve.gains]
            (line,) = ax.plot(curve.sizes, mean, marker="o", markersize=3, label=label)
            if any(g.seeds > 1 for g in curve.gains):
                low = [g.low * scale for g in curve.gains]
                high = [g.high * scale for g in curve.gains]
                ax.fill_between(curve.sizes, low, high, color=line.get_color(), alpha=0.15)
        dataset, task = column
        name = "geometric mean" if task == "geo_mean" else task
        ax.set_title(name if dataset is None else f"{dataset}/{name}")
        ax.set_xlabel("labeled sentences")
        ax.set_ylabel("gain over MT-R" + (" (×100)" if scale == 100 else ""))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(f"{title}: gain over random selection (MT-R), paired by seed")
    fig.tight_layout()
    return _save(fig, path)
