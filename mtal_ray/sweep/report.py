"""The comparison report of a sweep: a pure function of the stored trial results.

* :func:`score_table` — the paper's Table 10 shape: rows = methods, columns = each task's
  final score per scenario (dataset), mean ± std over seeds, plus the row average.
* :func:`curve_series` — learning curves of every method, per (scenario, task).
* :func:`overlap_matrices` — pairwise overlap of the first selection (after round 1)
  between methods, ``|A ∩ B| / max(|A|, |B|)`` averaged over seeds (the paper's Figure 1).
* :func:`beta_series` — final score against β per method (the paper's Figure 6).
* :func:`write_report` — ``report.md``, ``report.csv`` and the PNGs in the sweep directory.

A "method" row is ``selection.method`` plus every other swept key (but the seed and the
dataset) whose value differs between trials, e.g. ``mt-avg (β=0.5)``.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from mtal_ray.data.atomic import atomic_write_text
from mtal_ray.sweep.config import BETA_KEY, DATASET_KEY, METHOD_KEY, SEED_KEY
from mtal_ray.sweep.results import TrialResult, load_sweep_info, load_trials
from mtal_ray.sweep.series import Column, Curve, ScoreTable

#: Row order of the paper's Table 10, then the remaining methods of the library.
METHOD_ORDER = (
    "mt-r", "mt-avg", "mt-max", "mt-min", "mt-par", "mt-rrf", "mt-ind", "mt-avgda",
    "mt-ec", "mt-da", "st-r", "st-ec", "st-da", "blp-udjs", "blp-eqb", "blp-joint-avg",
    "blp-joint-max", "blp-joint-min", "blp-joint-rrf", "blp-stcs",
)  # fmt: skip
_SHORT_NAMES = {BETA_KEY: "β"}
#: Swept keys that switch per-task stopping on or off (paired with the runs without it).
STOPPING_PREFIX = "al.stopping"


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def varying_keys(trials: Iterable[TrialResult]) -> list[str]:
    """Swept keys (except seed, dataset and method) whose value differs between trials.

    A key that only some trials set (e.g. ``selection.budget`` of a grid's budgeted part)
    differs too: otherwise ``mt-min`` with and without a budget would share a row.
    """
    values: dict[str, list[str]] = defaultdict(list)
    trials = list(trials)
    for trial in trials:
        for key, value in trial.record.params.items():
            values[key].append(repr(value))
    skip = {SEED_KEY, DATASET_KEY, METHOD_KEY}
    keys = [
        k for k, v in values.items() if k not in skip and (len(set(v)) > 1 or len(v) < len(trials))
    ]
    return sorted(keys, key=lambda k: (k != BETA_KEY, k))


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict) and "criterion" in value:  # an al.stopping entry
        shown = [str(value["criterion"])]
        shown += [f"{k}={_format(value[k])}" for k in ("threshold", "window") if k in value]
        return " ".join(shown)
    if isinstance(value, list | tuple) and all(isinstance(v, dict) for v in value):
        return " + ".join(_format(v) for v in value) if value else "none"
    return str(value)


def trial_label(trial: TrialResult, keys: Sequence[str]) -> str:
    """``method`` or ``method (β=0.5, lr=1e-05)`` for the given varying ``keys``."""
    record = trial.record
    method = str(record.params.get(METHOD_KEY, record.method or "?"))
    extra = [
        f"{_SHORT_NAMES.get(k, k.rsplit('.', 1)[-1])}={_format(record.params[k])}"
        for k in keys
        if k in record.params
    ]
    return f"{method} ({', '.join(extra)})" if extra else method


def _order_key(trial: TrialResult, keys: Sequence[str]) -> tuple[Any, ...]:
    method = str(trial.record.params.get(METHOD_KEY, trial.record.method or ""))
    rank = METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)
    rest = tuple(_sortable(trial.record.params.get(k)) for k in keys)
    return (rank, method, *rest)


def _sortable(value: Any) -> tuple[int, Any]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, float(value))
    return (1, str(value))


def ordered_labels(trials: Sequence[TrialResult], keys: Sequence[str]) -> list[str]:
    """Distinct labels in table order (paper's method order, then parameter values)."""
    labels: dict[str, None] = {}
    for trial in sorted(trials, key=lambda t: _order_key(t, keys)):
        labels.setdefault(trial_label(trial, keys), None)
    return list(labels)


def _datasets(trials: Sequence[TrialResult], preferred: Sequence[str] = ()) -> list[str | None]:
    present = {t.record.dataset for t in trials}
    ordered: list[str | None] = [d for d in preferred if d in present]
    ordered += sorted((d for d in present if d not in ordered and d is not None), key=str)
    if None in present:
        ordered.append(None)
    return ordered


def _finished(trials: Iterable[TrialResult]) -> list[TrialResult]:
    return [t for t in trials if t.record.status == "finished" and t.rows]


def score_table(
    trials: Sequence[TrialResult], split: str = "test", datasets: Sequence[str] = ()
) -> ScoreTable:
    """Table-10-shaped summary of the finished trials (mean ± std over seeds)."""
    finished = _finished(trials)
    keys = varying_keys(finished)
    labels = ordered_labels(finished, keys)
    values: dict[str, dict[Column, list[float]]] = defaultdict(lambda: defaultdict(list))
    tasks_by_dataset: dict[str | None, dict[str, None]] = defaultdict(dict)
    for trial in finished:
        label = trial_label(trial, keys)
        for task, score in trial.final_scores(split).items():
            values[label][(trial.record.dataset, task)].append(score)
            tasks_by_dataset[trial.record.dataset].setdefault(task, None)
    columns = [(d, t) for d in _datasets(finished, datasets) for t in tasks_by_dataset[d]]
    table = ScoreTable(labels, columns)
    for label in labels:
        table.cells[label] = {
            col: (*_mean_std(values[label][col]), len(values[label][col]))
            for col in columns
            if values[label][col]
        }
        means = [table.cells[label][col][0] for col in columns if col in table.cells[label]]
        table.average[label] = sum(means) / len(means) if means else None
        table.complete[label] = len(means) == len(columns)
    return table


def score_scale(table: ScoreTable) -> float:
    """100 when every score is a fraction (shown as percentages, like the paper), else 1."""
    means = [cell[0] for row in table.cells.values() for cell in row.values()]
    return 100.0 if means and max(abs(m) for m in means) <= 1.0 else 1.0


def table_csv(table: ScoreTable) -> str:
    """The table as CSV: ``method``, then ``<column>.mean/.std/.n`` per column, ``average``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    header = ["method"]
    for col in table.columns:
        name = table.column_name(col)
        header += [f"{name}.mean", f"{name}.std", f"{name}.n"]
    writer.writerow([*header, "average"])
    for label in table.labels:
        row: list[Any] = [label]
        for col in table.columns:
            cell = table.cells[label].get(col)
            row += ["", "", 0] if cell is None else [f"{cell[0]:.6g}", f"{cell[1]:.6g}", cell[2]]
        avg = table.average[label]
        writer.writerow([*row, "" if avg is None else f"{avg:.6g}"])
    return out.getvalue()


def table_markdown(table: ScoreTable) -> str:
    """The table as Markdown; the best mean of each column is bold."""
    scale = score_scale(table)
    names = [table.column_name(c) for c in table.columns]
    lines = [
        "| method | " + " | ".join([*names, "Average"]) + " |",
        "|---|" + "---:|" * (len(names) + 1),
    ]
    best = {col: table.best(col) for col in table.columns}
    averages = {lb: a for lb, a in table.average.items() if a is not None}
    best_avg = max(averages, key=averages.__getitem__) if averages else None
    for label in table.labels:
        cells = []
        for col in table.columns:
            cell = table.cells[label].get(col)
            if cell is None:
                cells.append("–")
                continue
            text = f"{cell[0] * scale:.2f}"
            if cell[2] > 1:
                text += f" ± {cell[1] * scale:.2f}"
            cells.append(f"**{text}**" if best[col] == label and len(table.labels) > 1 else text)
        avg = table.average[label]
        avg_text = "–" if avg is None else f"{avg * scale:.2f}"
        if avg is not None and not table.complete[label]:
            avg_text += "*"
        if label == best_avg and len(table.labels) > 1:
            avg_text = f"**{avg_text}**"
        lines.append(f"| {label} | " + " | ".join([*cells, avg_text]) + " |")
    return "\n".join(lines) + "\n"


def curve_series(
    trials: Sequence[TrialResult], split: str = "test", datasets: Sequence[str] = ()
) -> dict[Column, dict[str, Curve]]:
    """Per (dataset, task), per method: the learning curve averaged over seeds."""
    finished = _finished(trials)
    keys = varying_keys(finished)
    labels = ordered_labels(finished, keys)
    points: dict[Column, dict[str, dict[int, list[tuple[float, float]]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for trial in finished:
        label = trial_label(trial, keys)
        sizes = trial.sizes
        for task, scores in trial.scores(split).items():
            for i, (size, score) in enumerate(zip(sizes, scores, strict=True)):
                if size is not None and score is not None:
                    points[(trial.record.dataset, task)][label][i].append((float(size), score))
    out: dict[Column, dict[str, Curve]] = {}
    for dataset in _datasets(finished, datasets):
        for column in [c for c in points if c[0] == dataset]:
            out[column] = {}
            for label in [lb for lb in labels if lb in points[column]]:
                per_iter = points[column][label]
                curve = Curve([], [], [])
                for i in sorted(per_iter):
                    sizes_i = [p[0] for p in per_iter[i]]
                    mean, std = _mean_std([p[1] for p in per_iter[i]])
                    curve.sizes.append(sum(sizes_i) / len(sizes_i))
                    curve.mean.append(mean)
                    curve.std.append(std)
                out[column][label] = curve
    return out


def overlap(a: Iterable[str], b: Iterable[str]) -> float:
    """``|A ∩ B| / max(|A|, |B|)`` (1 for equal sets, 0 for disjoint ones)."""
    sa, sb = set(a), set(b)
    size = max(len(sa), len(sb))
    return len(sa & sb) / size if size else 1.0


def overlap_matrices(
    trials: Sequence[TrialResult], datasets: Sequence[str] = ()
) -> dict[str | None, tuple[list[str], list[list[float | None]]]]:
    """Per dataset: method labels and the overlap of their first selections.

    Two methods are compared on the same seed (same initial labeled set and first model)
    and the overlaps are averaged over the seeds both have; ``None`` when they share none.
    """
    with_selection = [t for t in trials if t.first_selection is not None]
    keys = varying_keys(with_selection)
    out: dict[str | None, tuple[list[str], list[list[float | None]]]] = {}
    for dataset in _datasets(with_selection, datasets):
        group = [t for t in with_selection if t.record.dataset == dataset]
        labels = ordered_labels(group, keys)
        by_seed: dict[int, dict[str, list[str]]] = defaultdict(dict)
        for trial in group:
            by_seed[trial.record.seed].setdefault(
                trial_label(trial, keys), trial.first_selection or []
            )
        matrix: list[list[float | None]] = []
        for a in labels:
            row: list[float | None] = []
            for b in labels:
                shared = [overlap(s[a], s[b]) for s in by_seed.values() if a in s and b in s]
                row.append(sum(shared) / len(shared) if shared else None)
            matrix.append(row)
        out[dataset] = (labels, matrix)
    return out


def beta_series(
    trials: Sequence[TrialResult], split: str = "test", datasets: Sequence[str] = ()
) -> dict[Column, dict[str, list[tuple[float, float, float]]]]:
    """Per (dataset, task), per method: ``(β, mean, std)`` of the final score, by β.

    Empty unless the trials ran with at least two different β values.
    """
    finished = [t for t in _finished(trials) if t.record.beta is not None]
    if len({t.record.beta for t in finished}) < 2:
        return {}
    keys = [k for k in varying_keys(finished) if k != BETA_KEY]
    labels = ordered_labels(finished, keys)
    values: dict[Column, dict[str, dict[float, list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for trial in finished:
        label = trial_label(trial, keys)
        beta = float(trial.record.beta)  # type: ignore[arg-type]
        for task, score in trial.final_scores(split).items():
            values[(trial.record.dataset, task)][label][beta].append(score)
    out: dict[Column, dict[str, list[tuple[float, float, float]]]] = {}
    for dataset in _datasets(finished, datasets):
        for column in [c for c in values if c[0] == dataset]:
            out[column] = {
                label: [(b, *_mean_std(v)) for b, v in sorted(values[column][label].items())]
                for label in labels
                if label in values[column]
            }
    return out


def beta_references(
    trials: Sequence[TrialResult], split: str = "test", datasets: Sequence[str] = ()
) -> dict[Column, dict[str, tuple[float, float]]]:
    """Per (dataset, task): final score (mean, std) of methods run without β (e.g. MT-R).

    Drawn as horizontal reference lines in the β plot, like MT-R in the paper's Figure 6.
    """
    finished = [t for t in _finished(trials) if t.record.beta is None]
    keys = [k for k in varying_keys(finished) if k != BETA_KEY]
    values: dict[Column, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for trial in sorted(finished, key=lambda t: _order_key(t, keys)):
        label = trial_label(trial, keys)
        for task, score in trial.final_scores(split).items():
            values[(trial.record.dataset, task)][label].append(score)
    return {
        column: {label: _mean_std(v) for label, v in lines.items()}
        for column, lines in values.items()
    }


def _without_stopping(trial: TrialResult) -> tuple[Any, ...]:
    """What pairs a run with stopping and the same run without: everything else."""
    params = {
        k: repr(v) for k, v in trial.record.params.items() if not k.startswith(STOPPING_PREFIX)
    }
    return (trial.record.dataset, tuple(sorted(params.items())))


def stopping_rows(
    trials: Sequence[TrialResult], split: str = "test", datasets: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """Per method (and dataset) that ran with ``al.stopping``: where each task stopped,
    the annotation cost spent and what it saved.

    Each row: ``label``, ``dataset``, ``seeds``, ``stopped_at`` (task -> the iteration per
    seed, ``None`` = never), ``cost`` (mean over seeds), and, when the sweep holds the same
    run without stopping (same parameters but ``al.stopping*``, same seed):
    ``reference_cost`` (its mean), ``saved`` (mean of ``1 - cost / reference cost``) and
    ``score_change`` (task -> mean final ``split`` score difference, stopping minus not).
    """
    finished = _finished(trials)
    keys = varying_keys(finished)
    references = {_without_stopping(t): t for t in finished if not t.stopping}
    groups: dict[tuple[str | None, str], list[TrialResult]] = defaultdict(list)
    for trial in sorted(finished, key=lambda t: (_order_key(t, keys), t.record.seed)):
        if trial.stopping:
            groups[(trial.record.dataset, trial_label(trial, keys))].append(trial)
    rows = []
    for dataset in _datasets(finished, datasets):
        for (group_dataset, label), group in groups.items():
            if group_dataset != dataset:
                continue
            tasks = list(dict.fromkeys(t for trial in group for t in trial.stopping))
            row: dict[str, Any] = {
                "label": label,
                "dataset": dataset,
                "seeds": [t.record.seed for t in group],
                "stopped_at": {
                    task: [t.stopping.get(task, {}).get("stopped_at") for t in group]
                    for task in tasks
                },
                "cost": _mean_or_none([t.cost for t in group]),
            }
            pairs = [(t, references.get(_without_stopping(t))) for t in group]
            pairs = [(t, r) for t, r in pairs if r is not None]
            if pairs:
                row["reference_cost"] = _mean_or_none([r.cost for _, r in pairs])
                row["saved"] = _mean_or_none(
                    [1.0 - t.cost / r.cost for t, r in pairs if t.cost is not None and r.cost]
                )
                changes: dict[str, float | None] = {}
                for task in tasks:
                    diffs = []
                    for t, r in pairs:
                        a, b = t.final_scores(split).get(task), r.final_scores(split).get(task)
                        if a is not None and b is not None:
                            diffs.append(a - b)
                    changes[task] = _mean_or_none(diffs)
                row["score_change"] = changes
            rows.append(row)
    return rows


def _mean_or_none(values: Sequence[float | None]) -> float | None:
    known = [float(v) for v in values if v is not None]
    return sum(known) / len(known) if known else None


def stopping_markdown(rows: Sequence[dict[str, Any]], split: str, scale: float) -> str:
    """The per-task stopping section of ``report.md`` (empty without stopping runs)."""
    if not rows:
        return ""
    lines = [
        "## Per-task stopping",
        "",
        "Iteration at which each task stopped, per seed (– = never); annotation cost spent "
        "(the paper's cost model, mean over seeds); against the same runs without stopping "
        f"(same seeds): cost saved and the change of each task's final {split} score"
        f"{' (×100)' if scale == 100 else ''}.",
        "",
        "| method | task | stopped at | cost | cost without | saved | score change |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        name = row["label"] if row["dataset"] is None else f"{row['dataset']}: {row['label']}"
        for i, (task, stops) in enumerate(row["stopped_at"].items()):
            stopped = ", ".join("–" if s is None else str(s) for s in stops)
            first = i == 0
            cost = _fmt(row["cost"], ".0f") if first else ""
            ref = _fmt(row.get("reference_cost"), ".0f") if first else ""
            saved = row.get("saved")
            saved_text = (f"{saved * 100:.0f} %" if saved is not None else "–") if first else ""
            change = (row.get("score_change") or {}).get(task)
            change_text = "–" if change is None else f"{change * scale:+.2f}"
            lines.append(
                f"| {name if first else ''} | {task} | {stopped} | {cost} | {ref} | "
                f"{saved_text} | {change_text} |"
            )
    if not any("reference_cost" in r for r in rows):
        lines += ["", "No run without stopping to compare with: add `al.stopping: []` to the grid."]
    return "\n".join(lines) + "\n"


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def common_split(trials: Sequence[TrialResult], wanted: str) -> tuple[str, str | None]:
    """The split every trial is reported on, and a note when it is not ``wanted``: when
    some trials have no ``wanted`` scores (no test split), all are shown on dev, never
    some on test and others on dev side by side."""
    scored = [t for t in trials if t.rows]
    if wanted == "dev" or not scored:
        return wanted, None
    prefix = f"{wanted}."
    lacking = [
        t.record.name for t in scored if not any(k.startswith(prefix) for r in t.rows for k in r)
    ]
    if not lacking:
        return wanted, None
    if len(lacking) == len(scored):
        return "dev", f"No trial has {wanted} scores: every score below is on dev."
    shown = ", ".join(lacking[:5]) + (", ..." if len(lacking) > 5 else "")
    return "dev", (
        f"{len(lacking)} of {len(scored)} trials have no {wanted} scores ({shown}): every "
        "score below is on dev, so that all trials are compared on one split."
    )


def write_report(sweep_dir: Path, split: str | None = None) -> list[Path]:
    """(Re)write the report files of ``sweep_dir`` from its stored trials; returns them.

    ``report.md`` and ``report.csv`` always; ``learning_curves.png`` when a trial
    finished, ``overlap.png`` when trials made a first selection, ``beta.png`` when
    β was swept; ``reference.csv`` and ``gain_over_random.png`` when the sweep has MT-R
    (:mod:`mtal_ray.sweep.reference`). Stale files of an earlier report are removed.
    """
    from mtal_ray.sweep.plots import (
        plot_beta,
        plot_learning_curves,
        plot_overlap,
        plot_reference_gains,
    )
    from mtal_ray.sweep.reference import compare_with_reference, comparison_csv, comparison_markdown

    sweep_dir = Path(sweep_dir)
    trials = load_trials(sweep_dir)
    info = load_sweep_info(sweep_dir)
    split, split_note = common_split(trials, split or info.get("report_split") or "test")
    datasets = list(info.get("datasets") or [])
    name = info.get("name") or sweep_dir.name
    table = score_table(trials, split, datasets)
    written = [sweep_dir / "report.md", sweep_dir / "report.csv"]
    images = {
        "learning_curves.png": (plot_learning_curves, curve_series(trials, split, datasets)),
        "overlap.png": (plot_overlap, overlap_matrices(trials, datasets)),
        "beta.png": (plot_beta, beta_series(trials, split, datasets)),
    }
    comparison = compare_with_reference(trials, split, datasets)
    gains = {c: g for c, g in comparison.curves.items() if g}
    images["gain_over_random.png"] = (plot_reference_gains, gains)
    references = beta_references(trials, split, datasets)
    for filename, (plot, data) in images.items():
        path = sweep_dir / filename
        if data:
            extra = {"references": references} if filename == "beta.png" else {}
            plot(data, path, title=name, scale=score_scale(table), **extra)
            written.append(path)
        elif path.exists():
            path.unlink()
    atomic_write_text(sweep_dir / "report.csv", table_csv(table))
    reference_csv = sweep_dir / "reference.csv"
    if gains:
        atomic_write_text(reference_csv, comparison_csv(comparison))
        written.append(reference_csv)
    elif reference_csv.exists():
        reference_csv.unlink()
    text = _markdown(name, table, trials, split, [p.name for p in written])
    if split_note:
        text = text.replace("\n\n", f"\n\n{split_note}\n\n", 1)
    image = "gain_over_random.png" if gains else None
    text += "\n" + comparison_markdown(comparison, split, score_scale(table), image)
    from mtal_ray.sweep.cost_reference import compare_at_equal_cost, cost_markdown

    at_cost = cost_markdown(compare_at_equal_cost(trials, split), split, score_scale(table))
    if at_cost:
        text += "\n" + at_cost
    stopping = stopping_markdown(stopping_rows(trials, split, datasets), split, score_scale(table))
    if stopping:
        text += "\n" + stopping
    atomic_write_text(sweep_dir / "report.md", text)
    return written


def _markdown(
    name: str, table: ScoreTable, trials: Sequence[TrialResult], split: str, files: Sequence[str]
) -> str:
    status = defaultdict(list)
    for trial in trials:
        status[trial.record.status].append(trial)
    finished = _finished(trials)
    seeds = sorted({t.record.seed for t in finished})
    iterations = sorted({len(t.rows) for t in finished})
    scale = score_scale(table)
    lines = [f"# Sweep {name}: final scores", ""]
    if table.labels:
        lines += [
            f"Final {split} score of each task after "
            f"{'/'.join(map(str, iterations))} AL iterations"
            f"{' (×100)' if scale == 100 else ''}, mean ± std over "
            f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''} ({', '.join(map(str, seeds))}); "
            "Average = mean of the row (* = some columns missing). Best per column in bold.",
            "",
            table_markdown(table),
        ]
    else:
        lines += ["No trial has finished yet.", ""]
    lines.append(
        f"Trials: {len(finished)} finished, {len(status['failed'])} failed, "
        f"{len(status['running'])} unfinished."
    )
    if status["failed"]:
        lines += ["", "## Failed trials", ""]
        for trial in status["failed"]:
            error = (trial.record.error or "unknown error").strip().splitlines()
            lines.append(f"- `{trial.record.name}`: {error[-1] if error else ''}")
    pictures = {
        "learning_curves.png": "Learning curves",
        "overlap.png": "Overlap of the first selection (after round 1)",
        "beta.png": "Final score against β",
    }
    for filename, title in pictures.items():
        if filename in files:
            lines += ["", f"## {title}", "", f"![{title}]({filename})"]
    return "\n".join(lines) + "\n"
