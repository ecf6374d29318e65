"""The shapes a sweep report is made of: score-table columns, score tables, learning curves,
and the paired gains over random selection (MT-R).

Plain data shared by :mod:`mtal_ray.sweep.report` (which computes them from the stored
trials) and :mod:`mtal_ray.sweep.plots` (which draws them); neither imports the other's
module for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Column", "Curve", "Gain", "GainCurve", "ScoreTable"]

Column = tuple[str | None, str]  # (dataset or None, task)


@dataclass
class ScoreTable:
    """Final scores: ``cells[label][column] = (mean, std, n)`` and ``average[label]``."""

    labels: list[str]
    columns: list[Column]
    cells: dict[str, dict[Column, tuple[float, float, int]]] = field(default_factory=dict)
    average: dict[str, float | None] = field(default_factory=dict)
    complete: dict[str, bool] = field(default_factory=dict)

    @staticmethod
    def column_name(column: Column) -> str:
        """``dataset/task``, or just ``task`` when the sweep has no datasets."""
        dataset, task = column
        return task if dataset is None else f"{dataset}/{task}"

    def best(self, column: Column) -> str | None:
        """Label with the highest mean in ``column``."""
        candidates = [
            (self.cells[lb][column][0], lb) for lb in self.labels if column in self.cells[lb]
        ]
        return max(candidates)[1] if candidates else None


@dataclass
class Curve:
    """Mean learning curve of one method: labeled size and score (mean, std) per iteration."""

    sizes: list[float]
    mean: list[float]
    std: list[float]


@dataclass
class Gain:
    """A paired difference to the reference (method − MT-R, same seed), over seeds.

    ``mean`` of the per-seed differences, ``[low, high]`` its bootstrap confidence
    interval over seeds (degenerate, ``low == high == mean``, with one seed), ``seeds`` the
    number of pairs, ``wins``/``losses`` the seeds where the method is above/below, and
    ``[t_low, t_high]`` the Student-t interval of the mean (``None`` with one seed): with
    few seeds the bootstrap interval is the range of the differences (3 seeds: it excludes
    0 exactly when every seed is on the same side), the t interval accounts for n.
    """

    mean: float
    low: float
    high: float
    seeds: int
    wins: int
    losses: int
    t_low: float | None = None
    t_high: float | None = None

    @property
    def t_excludes_zero(self) -> bool:
        """Whether the Student-t interval lies wholly above or wholly below 0. Not when it
        has no width: differences identical in every seed (coarse scores, e.g. a small
        evaluation sample) give no estimate of their spread."""
        if self.t_low is None or self.t_high is None or self.t_high - self.t_low < 1e-9:
            return False
        return self.t_low > 0 or self.t_high < 0


@dataclass
class GainCurve:
    """One method's gain over MT-R per AL iteration, and on the area under the curve.

    ``sizes`` is the method's labeled-set size per iteration (mean over seeds); ``area``
    the paired difference of the normalised areas under the learning curves, whose means
    over the same seeds are ``area_method`` and ``area_reference``.
    """

    iterations: list[int]
    sizes: list[float]
    gains: list[Gain]
    area: Gain
    area_method: float
    area_reference: float
