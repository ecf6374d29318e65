"""When to stop annotating a task: stopping criteria over a task's round history (pure).

Each criterion looks at one task's history — one :class:`TaskRound` per evaluated round —
and answers :meth:`Criterion.should_stop` with a :class:`Decision` (stop or not, and the
value it judged). The AL loop (:mod:`mtal_ray.driver.loop`) asks them per task after each
round's scoring; a task whose criterion fires stops being annotated while training keeps
using everything gathered for it (per-task stopping).

=========================  ==============================================================
criterion                  fires when
=========================  ==============================================================
stabilizing-predictions    Cohen's κ between consecutive rounds' predictions on a fixed
                           unlabeled stop set ≥ ``threshold`` for ``window`` rounds in a
                           row (Bloodgood & Vijay-Shanker, 2009; defaults 0.99 and 3)
overall-uncertainty        the task's mean uncertainty on the pool (1 − mean EC) is below
                           ``threshold``
max-uncertainty            the task's largest uncertainty on the pool is below
                           ``threshold``
dev-plateau                the task's dev score gained less than ``threshold`` (δ) over
                           the last ``window`` rounds
budget                     the annotation spent on the task reached ``threshold``
                           (``unit``: ``cost`` or ``sentences``)
=========================  ==============================================================
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from mtal_ray.errors import ConfigError

CRITERIA = (
    "stabilizing-predictions",
    "overall-uncertainty",
    "max-uncertainty",
    "dev-plateau",
    "budget",
)


@dataclass(frozen=True)
class TaskRound:
    """What one round tells about one task (``None``: not measured this round)."""

    iteration: int
    dev: float | None = None
    kappa: float | None = None  # agreement with the previous round's stop-set predictions
    mean_uncertainty: float | None = None
    max_uncertainty: float | None = None
    cost: float = 0.0  # annotation cost spent on the task so far
    sentences: int = 0  # sentences annotated for the task so far


@dataclass(frozen=True)
class Decision:
    """Whether to stop, and the value the criterion judged (``None``: not enough history)."""

    stop: bool
    value: float | None


class Criterion(Protocol):
    """A stopping rule over one task's history."""

    name: str

    def should_stop(self, history: Sequence[TaskRound]) -> Decision:
        """Judge the history (oldest round first)."""
        ...


@dataclass(frozen=True)
class StabilizingPredictions:
    """κ between consecutive rounds' stop-set predictions ≥ threshold for ``window`` rounds."""

    threshold: float = 0.99
    window: int = 3
    name: str = "stabilizing-predictions"

    def should_stop(self, history: Sequence[TaskRound]) -> Decision:
        kappas = [r.kappa for r in history if r.kappa is not None]
        if not kappas:
            return Decision(False, None)
        recent = kappas[-self.window :]
        stop = len(recent) == self.window and all(k >= self.threshold for k in recent)
        return Decision(stop, kappas[-1])


@dataclass(frozen=True)
class Uncertainty:
    """The pool's mean (or max) uncertainty of the task below ``threshold``."""

    threshold: float
    aggregate: Literal["mean", "max"] = "mean"

    @property
    def name(self) -> str:
        return "overall-uncertainty" if self.aggregate == "mean" else "max-uncertainty"

    def should_stop(self, history: Sequence[TaskRound]) -> Decision:
        if not history:
            return Decision(False, None)
        last = history[-1]
        value = last.mean_uncertainty if self.aggregate == "mean" else last.max_uncertainty
        if value is None:
            return Decision(False, None)
        return Decision(value < self.threshold, value)


@dataclass(frozen=True)
class DevPlateau:
    """The dev score gained less than δ over the last ``window`` rounds."""

    delta: float
    window: int = 3
    name: str = "dev-plateau"

    def should_stop(self, history: Sequence[TaskRound]) -> Decision:
        scores = [r.dev for r in history if r.dev is not None]
        if len(scores) <= self.window:
            return Decision(False, None)
        gain = scores[-1] - scores[-1 - self.window]
        return Decision(gain < self.delta, gain)


@dataclass(frozen=True)
class Budget:
    """The annotation spent on the task (cost or sentences) reached ``limit``."""

    limit: float
    unit: Literal["cost", "sentences"] = "cost"
    name: str = "budget"

    def should_stop(self, history: Sequence[TaskRound]) -> Decision:
        if not history:
            return Decision(False, None)
        last = history[-1]
        spent = float(last.cost if self.unit == "cost" else last.sentences)
        return Decision(spent >= self.limit, spent)


def make_criterion(
    criterion: str,
    threshold: float | None = None,
    window: int | None = None,
    unit: str = "cost",
) -> Criterion:
    """Build a criterion by name; ``threshold``/``window`` default as each rule documents.

    Raises
    ------
    ConfigError
        For an unknown criterion, a missing threshold where there is no default, or a
        threshold the rule could never (or would always) fire on.
    """
    if threshold is not None and not math.isfinite(threshold):
        raise ConfigError(f"al.stopping: {criterion}'s threshold must be a finite number")
    if window is not None and window < 1:
        raise ConfigError(f"al.stopping: window must be at least 1 round, not {window}")
    if criterion == "stabilizing-predictions":
        kappa = 0.99 if threshold is None else threshold
        if not -1.0 < kappa <= 1.0:
            raise ConfigError(
                f"al.stopping: stabilizing-predictions' threshold is a Cohen's κ in (-1, 1], "
                f"not {kappa}"
            )
        return StabilizingPredictions(kappa, 3 if window is None else window)
    if criterion in ("overall-uncertainty", "max-uncertainty"):
        if threshold is None:
            raise ConfigError(f"al.stopping: {criterion} needs a threshold (an uncertainty)")
        if not 0.0 < threshold <= 1.0:
            raise ConfigError(
                f"al.stopping: {criterion}'s threshold is an uncertainty (1 − EC) in (0, 1], "
                f"not {threshold}"
            )
        return Uncertainty(threshold, "mean" if criterion == "overall-uncertainty" else "max")
    if criterion == "dev-plateau":
        if threshold is None:
            raise ConfigError("al.stopping: dev-plateau needs a threshold (the gain δ)")
        if not threshold > 0:
            raise ConfigError(
                f"al.stopping: dev-plateau's threshold is the least dev gain δ that counts as "
                f"learning, > 0 (e.g. 0.005), not {threshold}"
            )
        return DevPlateau(threshold, 3 if window is None else window)
    if criterion == "budget":
        if threshold is None:
            raise ConfigError("al.stopping: budget needs a threshold (the task's budget)")
        if not threshold > 0:
            raise ConfigError(f"al.stopping: budget's threshold must be > 0, not {threshold}")
        if unit not in ("cost", "sentences"):
            raise ConfigError(f"al.stopping.unit: {unit!r} is not cost or sentences")
        return Budget(threshold, unit)  # type: ignore[arg-type]
    known = ", ".join(CRITERIA)
    raise ConfigError(f"al.stopping.criterion: unknown {criterion!r} (choose: {known})")


def decide(
    criteria: Sequence[Criterion], history: Sequence[TaskRound], combine: str = "any"
) -> Decision:
    """Combine the criteria's decisions on one history (``any`` or ``all`` must fire).

    The value reported is the first criterion's.
    """
    decisions = [c.should_stop(history) for c in criteria]
    fire = any if combine == "any" else all
    return Decision(bool(decisions) and fire(d.stop for d in decisions), decisions[0].value)


def cohen_kappa(a: Sequence[object], b: Sequence[object]) -> float:
    """Cohen's κ between two labelings of the same items (1.0 when both are constant and equal).

    Raises
    ------
    ValueError
        When the labelings differ in length or are empty.
    """
    if len(a) != len(b) or not len(a):
        raise ValueError(f"kappa needs two labelings of the same items ({len(a)} vs {len(b)})")
    labels = sorted({*map(str, a), *map(str, b)})
    index = {label: i for i, label in enumerate(labels)}
    x = np.fromiter((index[str(v)] for v in a), dtype=np.int64, count=len(a))
    y = np.fromiter((index[str(v)] for v in b), dtype=np.int64, count=len(b))
    observed = float(np.mean(x == y))
    pa_ = np.bincount(x, minlength=len(labels)) / len(x)
    pb_ = np.bincount(y, minlength=len(labels)) / len(y)
    expected = float(np.dot(pa_, pb_))
    if math.isclose(expected, 1.0):
        return 1.0 if math.isclose(observed, 1.0) else 0.0
    return (observed - expected) / (1.0 - expected)


def prediction_items(
    rows: Sequence[Mapping[str, object]], columns: Sequence[str], per_word: bool
) -> list[str]:
    """The items κ compares for one task, in row order: one per word (``per_word``: tags;
    head and relation of each word) or one per sentence (a label; the sentence's relation
    set, order-free)."""
    items: list[str] = []
    for row in rows:
        values = [row.get(c) for c in columns]
        if per_word:
            items.extend("|".join(map(str, word)) for word in zip(*values, strict=True))
        elif isinstance(values[0], list):
            items.append(repr(sorted(repr(sorted(dict(r).items())) for r in values[0])))
        else:
            items.append(repr(values))
    return items
