"""The comparison with random selection at equal annotation cost (pure, no Ray).

:mod:`mtal_ray.sweep.reference` pairs a method with MT-R iteration by iteration, i.e. at
equal numbers of sentences, the paper's protocol. Selections differ in what a sentence
costs, though: an uncertainty method's first picks can be short sentences with few
entities, half the annotation work of a random batch (``benchmarks/README.md``,
validity). Here each trial's geometric mean of the task scores is placed at the
*annotation cost* spent before each training (the rows' ``cost_annotated``: the cost
model counted on the labels given, which random selection has too), and MT-R's curve is
read at the method's cost by linear interpolation, never extrapolated. Per method, over
the seeds: the difference at the last cost both curves reach (the method's final cost, or
random's when the method spent more; the other curve interpolated), the difference of the
areas under the two curves over the cost range both cover (each normalised by that range:
a mean score), and the ratio of the costs spent. Trials without ``cost_annotated`` (runs from
before it was recorded) are left out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from mtal_ray.sweep.reference import (
    GEO_MEAN,
    REFERENCE,
    _is_reference,
    _task_curves,
    curve_area,
    gain_text,
    reference_for,
)
from mtal_ray.sweep.report import _finished, _order_key, trial_label, varying_keys
from mtal_ray.sweep.results import TrialResult
from mtal_ray.sweep.series import Gain


@dataclass
class CostGain:
    """One method against MT-R at equal annotation cost, over its paired seeds."""

    final: Gain
    area: Gain
    cost_ratio: float  # mean over seeds of (method's cost spent / MT-R's)


@dataclass
class CostComparison:
    """``gains[dataset][method label]``; ``without_cost`` names the finished trials whose
    rows hold no annotated cost, ``other_tasks`` those scored on other tasks than their
    MT-R trial (a single-task ST-AL trial: its one score is no geometric mean of MT-R's
    tasks)."""

    gains: dict[str, dict[str, CostGain]] = field(default_factory=dict)
    without_cost: list[str] = field(default_factory=list)
    other_tasks: list[str] = field(default_factory=list)


def cost_curve(trial: TrialResult, split: str) -> tuple[list[float], list[float]] | None:
    """The trial's (cumulative annotated cost before each training, geometric mean) points,
    or None when a row lacks either."""
    geo = _task_curves(trial, split).get(GEO_MEAN) or []
    spent, total = [], 0.0
    for row in trial.rows[: len(geo)]:
        spent.append(total)
        cost = row.get("cost_annotated")
        total += float(cost) if cost is not None else float("nan")
    points = list(zip(spent, geo, strict=True))
    if len(points) < 2 or any(g is None or not np.isfinite(c) for c, g in points):
        return None  # the last row's cost (no selection after it) is never read
    return [c for c, _ in points], [float(g) for _, g in points]  # type: ignore[arg-type]


def paired_at_cost(
    mine: tuple[list[float], list[float]], random: tuple[list[float], list[float]]
) -> tuple[float | None, float, float]:
    """(difference at ``mine``'s final cost or None beyond random's curve, difference of
    the areas over the common cost range, cost ratio) of two cost curves."""
    cost, score = np.asarray(mine[0]), np.asarray(mine[1])
    rcost, rscore = np.asarray(random[0]), np.asarray(random[1])
    final = None
    if rcost[0] <= cost[-1] <= rcost[-1]:
        final = float(score[-1] - np.interp(cost[-1], rcost, rscore))
    end = min(cost[-1], rcost[-1])  # both curves are linear between these: exact areas
    grid = np.union1d(np.concatenate([cost, rcost]).clip(max=end), [end])
    area = curve_area(list(grid), list(np.interp(grid, cost, score))) - curve_area(
        list(grid), list(np.interp(grid, rcost, rscore))
    )
    ratio = float(cost[-1] / rcost[-1]) if rcost[-1] > 0 else float("nan")
    return final, float(area), ratio


def final_at_common_cost(
    mine: tuple[list[float], list[float]], random: tuple[list[float], list[float]]
) -> float:
    """Difference of two cost curves at the last cost both reach: ``mine``'s final cost when
    it spent less than random (random interpolated), random's final cost when it spent more
    (``mine`` interpolated); never extrapolated."""
    cost, score = np.asarray(mine[0]), np.asarray(mine[1])
    rcost, rscore = np.asarray(random[0]), np.asarray(random[1])
    end = min(cost[-1], rcost[-1])
    return float(np.interp(end, cost, score) - np.interp(end, rcost, rscore))


def compare_at_equal_cost(
    trials: Sequence[TrialResult], split: str = "test", *, seed: int = 0
) -> CostComparison:
    """Every finished method against its MT-R trial (same seed and cell) at equal cost."""
    from mtal_ray.sweep.reference import paired_gain

    finished = _finished(trials)
    references = [t for t in finished if _is_reference(t)]
    out = CostComparison()
    if not references:
        return out
    keys = varying_keys(finished)
    collected: dict[str, dict[str, list[tuple[float, float, float]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for trial in sorted(
        (t for t in finished if not _is_reference(t)), key=lambda t: _order_key(t, keys)
    ):
        ref = reference_for(trial, references)
        if ref is None:
            continue
        if set(trial.scores(split)) != set(ref.scores(split)):
            out.other_tasks.append(trial.record.name)
            continue
        mine, theirs = cost_curve(trial, split), cost_curve(ref, split)
        for name, curve in ((trial.record.name, mine), (ref.record.name, theirs)):
            if curve is None and name not in out.without_cost:
                out.without_cost.append(name)
        if mine is None or theirs is None:
            continue
        dataset = trial.record.dataset or ""
        _, area, ratio = paired_at_cost(mine, theirs)
        final = final_at_common_cost(mine, theirs)
        collected[dataset][trial_label(trial, keys)].append((final, area, ratio))
    for dataset, methods in collected.items():
        for label, pairs in methods.items():
            out.gains.setdefault(dataset, {})[label] = CostGain(
                final=paired_gain([f for f, _, _ in pairs], seed=seed),
                area=paired_gain([a for _, a, _ in pairs], seed=seed),
                cost_ratio=float(np.mean([r for _, _, r in pairs])),
            )
    return out


def cost_markdown(comparison: CostComparison, split: str, scale: float) -> str:
    """The report section (empty when no pair has annotated costs)."""
    if not comparison.gains:
        return ""
    lines = [
        f"## Gain over random selection ({REFERENCE.upper()}) at equal annotation cost",
        "",
        f"The {split} geometric mean of the task scores against the annotation cost spent "
        "before each training (`cost_annotated`: the cost model on the labels given), "
        f"{REFERENCE.upper()}'s curve read at the method's cost (a method that spent more is "
        f"compared at {REFERENCE.upper()}'s final cost, itself read there). Mean over seeds "
        "[95 % bootstrap interval] wins/losses.",
        "",
    ]
    for dataset, methods in comparison.gains.items():
        if dataset:
            lines += [f"### {dataset}", ""]
        lines += [
            "| method | cost spent vs MT-R | Δ at the final cost | Δ area over cost |",
            "|---|---:|---:|---:|",
        ]
        for label, gain in methods.items():
            lines.append(
                f"| {label} | {gain.cost_ratio:.3f}× | {gain_text(gain.final, scale)} | "
                f"{gain_text(gain.area, scale)} |"
            )
        lines.append("")
    if comparison.without_cost:
        shown = ", ".join(comparison.without_cost[:5])
        lines += [f"Left out (no annotated cost recorded): {shown}.", ""]
    if comparison.other_tasks:
        shown = ", ".join(comparison.other_tasks[:5])
        lines += [f"Left out (scored on other tasks than MT-R): {shown}.", ""]
    return "\n".join(lines)
