"""The sweep report's comparison with random selection (MT-R), paired by seed.

Active learning is worth its cost only if its selections beat annotating at random. For a
sweep that contains ``mt-r`` this module pairs every other trial with the MT-R trial of the
same seed (same initial labeled set and first model) and the same cell (dataset, and any
swept key both trials set, e.g. β), and reports per method and AL iteration:

* the paired difference ``method − MT-R`` on each task and on the geometric mean of the
  tasks, averaged over seeds, with a percentile bootstrap interval over seeds
  (:func:`bootstrap_ci`; pure numpy, seeded, so a report is reproducible) and the wins and
  losses per seed;
* the same for the area under the learning curve (:func:`curve_area`: trapezoid over the
  labeled-set size, divided by the x range, so it is on the score's scale).

With one seed every interval is degenerate (one difference, no measure of its
uncertainty); the report says so. Pure functions of the stored trials: no Ray, no torch.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from mtal_ray.sweep.config import DATASET_KEY, METHOD_KEY, SEED_KEY
from mtal_ray.sweep.report import (
    _datasets,
    _finished,
    _order_key,
    ordered_labels,
    trial_label,
    varying_keys,
)
from mtal_ray.sweep.results import TrialResult
from mtal_ray.sweep.series import Column, Gain, GainCurve

#: The random-selection baseline every method is compared with.
REFERENCE = "mt-r"
#: The pseudo-task of the geometric mean of a trial's task scores.
GEO_MEAN = "geo_mean"
#: Bootstrap defaults: 95 % percentile interval from 2000 resamples of the seeds.
LEVEL, RESAMPLES = 0.95, 2000


def bootstrap_ci(
    values: Sequence[float], *, level: float = LEVEL, resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (one value per seed).

    The seeds are resampled with replacement ``resamples`` times (``numpy`` generator
    seeded with ``seed``: the same inputs give the same interval). One value gives the
    degenerate interval ``(value, value)``.
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("bootstrap_ci needs at least one value")
    if x.size == 1 or np.all(x == x[0]):
        return float(x[0]), float(x[0])
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


#: Two-sided 95 % Student-t quantiles t(0.975, df) for df = 1..30.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t_interval(values: Sequence[float]) -> tuple[float, float] | None:
    """The 95 % Student-t interval of the mean of ``values`` (one per seed): mean ±
    t(0.975, n − 1) · s / √n. ``None`` for fewer than two values. Beyond 30 degrees of
    freedom, the Cornish-Fisher expansion of t around z = 1.96 (within 1e-4 of the exact
    quantile there)."""
    x = np.asarray(values, dtype=float)
    if x.size < 2:
        return None
    df = x.size - 1
    if df <= len(_T975):
        quantile = _T975[df - 1]
    else:
        z = 1.959964
        quantile = z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
    half = quantile * float(x.std(ddof=1)) / math.sqrt(x.size)
    mean = float(x.mean())
    return mean - half, mean + half


def paired_gain(differences: Sequence[float], *, seed: int = 0) -> Gain:
    """Mean, bootstrap and t intervals, wins and losses of per-seed differences."""
    diffs = [float(d) for d in differences]
    low, high = bootstrap_ci(diffs, seed=seed)
    t = t_interval(diffs)
    return Gain(
        mean=sum(diffs) / len(diffs),
        low=low,
        high=high,
        seeds=len(diffs),
        wins=sum(d > 0 for d in diffs),
        losses=sum(d < 0 for d in diffs),
        t_low=None if t is None else t[0],
        t_high=None if t is None else t[1],
    )


def curve_area(sizes: Sequence[float], scores: Sequence[float]) -> float:
    """Area under a learning curve, normalised by its x range.

    Trapezoids over the labeled-set size, divided by ``sizes[-1] - sizes[0]``: a curve that
    stays at score ``s`` has area ``s``. A single point (or no x range) gives the mean score.
    """
    if len(sizes) != len(scores) or not scores:
        raise ValueError("curve_area needs as many sizes as scores (at least one)")
    x = np.asarray(sizes, dtype=float)
    y = np.asarray(scores, dtype=float)
    width = float(x[-1] - x[0])
    if len(x) < 2 or width <= 0:
        return float(y.mean())
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0) / width)


def _geometric_mean(scores: Sequence[float]) -> float:
    if not scores or min(scores) <= 0:
        return 0.0
    return math.exp(sum(math.log(s) for s in scores) / len(scores))


def _task_curves(trial: TrialResult, split: str) -> dict[str, list[float | None]]:
    """Per task (and :data:`GEO_MEAN`), the trial's score at each iteration."""
    curves = trial.scores(split)
    if curves:
        n = len(trial.rows)
        geo: list[float | None] = []
        for i in range(n):
            values = [c[i] for c in curves.values()]
            known = [v for v in values if v is not None]
            geo.append(_geometric_mean(known) if len(known) == len(values) else None)
        curves[GEO_MEAN] = geo
    return curves


def _is_reference(trial: TrialResult) -> bool:
    return str(trial.record.params.get(METHOD_KEY, trial.record.method)) == REFERENCE


def reference_for(trial: TrialResult, references: Sequence[TrialResult]) -> TrialResult | None:
    """The MT-R trial ``trial`` is paired with, or ``None``.

    Same dataset and seed; every swept key that both set (β, encoder, ...) equal; among
    several, the one sharing the most keys (the first in name order on a tie).
    """
    own = {k: v for k, v in trial.record.params.items() if k != METHOD_KEY}
    best: tuple[int, TrialResult] | None = None
    for ref in sorted(references, key=lambda r: r.record.name):
        if (ref.record.dataset, ref.record.seed) != (trial.record.dataset, trial.record.seed):
            continue
        theirs = {k: v for k, v in ref.record.params.items() if k != METHOD_KEY}
        shared = [k for k in own if k in theirs and k not in (SEED_KEY, DATASET_KEY)]
        if any(own[k] != theirs[k] for k in shared):
            continue
        if best is None or len(shared) > best[0]:
            best = (len(shared), ref)
    return None if best is None else best[1]


@dataclass
class ReferenceComparison:
    """Every method's gains over MT-R: ``curves[(dataset, task)][method label]``.

    ``task`` is a task name or :data:`GEO_MEAN`. ``has_reference`` is False when the
    sweep has no finished ``mt-r`` trial (then ``curves`` is empty); ``unpaired`` names
    the finished trials that found no MT-R trial of their seed and cell; ``other_sizes``
    the method labels whose labeled sets differ in size from their MT-R trial's at some
    iteration (a ``selection.budget``): their per-iteration differences compare different
    sentence counts, so the comparison at equal cost is the one to read for them.
    """

    has_reference: bool
    curves: dict[Column, dict[str, GainCurve]] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=list)
    unpaired: list[str] = field(default_factory=list)
    other_sizes: list[str] = field(default_factory=list)

    @property
    def single_seed(self) -> bool:
        """Whether every interval is degenerate (at most one seed per pair)."""
        return all(g.area.seeds <= 1 for c in self.curves.values() for g in c.values())


def compare_with_reference(
    trials: Sequence[TrialResult],
    split: str = "test",
    datasets: Sequence[str] = (),
    *,
    seed: int = 0,
) -> ReferenceComparison:
    """The paired comparison of every finished method with MT-R (see the module docstring).

    ``seed`` seeds the bootstrap. Iterations are paired by index (the same AL protocol);
    a pair counts only at the iterations where both trials have the score.
    """
    finished = _finished(trials)
    references = [t for t in finished if _is_reference(t)]
    if not references:
        return ReferenceComparison(has_reference=False)
    methods = [t for t in finished if not _is_reference(t)]
    keys = varying_keys(finished)
    labels = ordered_labels(methods, keys)
    # (dataset, task) -> label -> iteration -> [(size, difference)]
    points: dict[Column, dict[str, dict[int, list[tuple[float, float]]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    # (dataset, task) -> label -> [(area method, area reference)]
    areas: dict[Column, dict[str, list[tuple[float, float]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    unpaired: list[str] = []
    other_sizes: list[str] = []
    seeds: set[int] = set()
    for trial in sorted(methods, key=lambda t: _order_key(t, keys)):
        ref = reference_for(trial, references)
        if ref is None:
            unpaired.append(trial.record.name)
            continue
        seeds.add(trial.record.seed)
        label = trial_label(trial, keys)
        mine, theirs = _task_curves(trial, split), _task_curves(ref, split)
        for task in [t for t in mine if t in theirs]:
            if task == GEO_MEAN and set(mine) != set(theirs):
                continue  # a single-task trial's "mean" is not comparable with MT-R's
            column = (trial.record.dataset, task)
            xs, ys, rs = [], [], []
            for i, (size, a, b) in enumerate(
                zip(trial.sizes, mine[task], theirs[task], strict=False)
            ):
                if a is None or b is None:
                    continue
                points[column][label][i].append((float(size or 0), a - b))
                if size is not None and i < len(ref.sizes) and ref.sizes[i] is not None:
                    xs.append((float(size), float(ref.sizes[i])))  # type: ignore[arg-type]
                    ys.append(a)
                    rs.append(b)
                    if xs[-1][0] != xs[-1][1] and label not in other_sizes:
                        other_sizes.append(label)
            if ys:
                area_a = curve_area([x[0] for x in xs], ys)
                area_b = curve_area([x[1] for x in xs], rs)
                areas[column][label].append((area_a, area_b))
    comparison = ReferenceComparison(
        True, seeds=sorted(seeds), unpaired=unpaired, other_sizes=other_sizes
    )
    for dataset in _datasets(finished, datasets):
        columns = [c for c in points if c[0] == dataset]
        columns.sort(key=lambda c: c[1] == GEO_MEAN)  # tasks first, then the geometric mean
        for column in columns:
            comparison.curves[column] = {}
            for label in [lb for lb in labels if lb in points[column]]:
                per_iter = points[column][label]
                pairs = areas[column][label]
                if not pairs:
                    continue
                iterations = sorted(per_iter)
                comparison.curves[column][label] = GainCurve(
                    iterations=iterations,
                    sizes=[float(np.mean([p[0] for p in per_iter[i]])) for i in iterations],
                    gains=[paired_gain([p[1] for p in per_iter[i]], seed=seed) for i in iterations],
                    area=paired_gain([a - b for a, b in pairs], seed=seed),
                    area_method=float(np.mean([a for a, _ in pairs])),
                    area_reference=float(np.mean([b for _, b in pairs])),
                )
    return comparison


def _signed(value: float, scale: float) -> str:
    return f"{value * scale:+.2f}".replace("-", "−")


def gain_text(gain: Gain, scale: float) -> str:
    """``+1.20 [−0.30, +2.50] 2/1``: mean, bootstrap interval (when over several seeds),
    wins/losses; ``*`` after it when the Student-t interval excludes 0 too."""
    text = _signed(gain.mean, scale)
    if gain.seeds > 1:
        text += f" [{_signed(gain.low, scale)}, {_signed(gain.high, scale)}]"
    return f"{text} {gain.wins}/{gain.losses}{'*' if gain.t_excludes_zero else ''}"


def comparison_markdown(
    comparison: ReferenceComparison, split: str, scale: float, image: str | None = None
) -> str:
    """The report section: one table per (dataset, task), rows = methods; then ``image``."""
    lines = ["## Gain over random selection (MT-R)", ""]
    if not comparison.has_reference:
        lines += [
            "This sweep has no random reference: no finished `mt-r` trial, so the selections "
            "are not compared with annotating at random. Add `mt-r` to the sweep's methods "
            "(same seeds) for that comparison.",
        ]
        return "\n".join(lines) + "\n"
    seeds = comparison.seeds
    lines += [
        f"Paired difference to MT-R on the {split} split{' (×100)' if scale == 100 else ''}: "
        "the same seed (same initial labeled set) and cell (dataset, β, ...), method − MT-R, "
        f"mean over {len(seeds)} seed{'s' if len(seeds) != 1 else ''} "
        f"({', '.join(map(str, seeds))}), "
        f"[{LEVEL:.0%} bootstrap interval over seeds], wins/losses = seeds above/below MT-R, "
        "`*` when the Student-t 95 % interval of the mean excludes 0 as well (with 3 seeds the "
        "bootstrap interval is the range of the per-seed differences: it excludes 0 whenever "
        "every seed is on one side, which chance alone does 1 time in 4). "
        "AUC: area under the learning curve (trapezoid over labeled sentences, divided by "
        "the x range), its paired difference; in brackets after it, the method's mean AUC.",
        "",
    ]
    if comparison.single_seed:
        lines += [
            "**One seed only: every interval is degenerate** (a single difference per cell, "
            "no measure of its uncertainty); run more seeds before drawing a conclusion.",
            "",
        ]
    if comparison.unpaired:
        names = ", ".join(f"`{n}`" for n in comparison.unpaired)
        lines += [f"Without an MT-R trial of their seed and cell (left out): {names}.", ""]
    if comparison.other_sizes:
        names = ", ".join(f"`{n}`" for n in comparison.other_sizes)
        lines += [
            f"Labeled sets of another size than MT-R's at the same iteration (a budget per "
            f"round): {names}. Their differences below compare different sentence counts "
            "(and their AUC another x range); read them at equal annotation cost instead.",
            "",
        ]
    for column, curves in comparison.curves.items():
        if not curves:
            continue
        dataset, task = column
        name = "geometric mean of the tasks" if task == GEO_MEAN else task
        lines += [f"### {f'{dataset}: ' if dataset else ''}{name}", ""]
        first = next(iter(curves.values()))
        heads = [f"it {i} ({s:.0f})" for i, s in zip(first.iterations, first.sizes, strict=True)]
        lines.append("| method | " + " | ".join([*heads, "AUC"]) + " |")
        lines.append("|---|" + "---:|" * (len(heads) + 1))
        for label, curve in curves.items():
            by_iter = dict(zip(curve.iterations, curve.gains, strict=True))
            cells = [
                gain_text(by_iter[i], scale) if i in by_iter else "–" for i in first.iterations
            ]
            area = f"{gain_text(curve.area, scale)} ({curve.area_method * scale:.2f})"
            lines.append(f"| {label} | " + " | ".join([*cells, area]) + " |")
        lines.append("")
    if image:
        title = "Gain over MT-R per iteration (band: the bootstrap interval)"
        lines += [f"![{title}]({image})", ""]
    return "\n".join(lines)


def comparison_csv(comparison: ReferenceComparison) -> str:
    """Long-format CSV: one row per dataset, task, method and iteration (``auc`` last)."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["dataset", "task", "method", "iteration", "labeled", "gain", "low", "high", "seeds",
         "wins", "losses", "t_low", "t_high"]
    )  # fmt: skip
    for (dataset, task), curves in comparison.curves.items():
        for label, curve in curves.items():
            rows = [
                (str(i), f"{s:g}", g)
                for i, s, g in zip(curve.iterations, curve.sizes, curve.gains, strict=True)
            ]
            rows.append(("auc", "", curve.area))
            for iteration, size, g in rows:
                writer.writerow(
                    [dataset or "", task, label, iteration, size, f"{g.mean:.6g}",
                     f"{g.low:.6g}", f"{g.high:.6g}", g.seeds, g.wins, g.losses,
                     "" if g.t_low is None else f"{g.t_low:.6g}",
                     "" if g.t_high is None else f"{g.t_high:.6g}"]
                )  # fmt: skip
    return out.getvalue()
