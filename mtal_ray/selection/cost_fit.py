"""The paper's cost formula (§7) fitted to measured annotation times.

A sentence of ``m`` words annotated on a set S of tasks costs, in the paper's model,

    cost(S) = m + Σ_{t∈S} c_t · x_t

with ``x_t`` the number of labels of task t (entities of a token-level task such as SF or
NER: ``tp`` per entity; 1 for a sentence-level task such as ID: ``ts`` per sentence). The
paper prices a word at 1, an entity at ``tp = 1`` and a sentence label at ``ts = 3``.

:func:`fit_costs` estimates the seconds per word ``w`` and the seconds per label ``c_t``
of each task from the times an annotation tool measured, by non-negative least squares
on ``seconds ≈ w·m + Σ_{t∈S} c_t·x_t``. :meth:`FittedCosts.cost_model` turns the fit into
a :class:`~mtal_ray.selection.cost.CostModel` in the paper's unit (one word read = 1), so a
budget keeps its meaning and only the relative prices of labels change: ``tp_t = c_t/w``.
Pure numpy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from mtal_ray.errors import SelectionError
from mtal_ray.selection.cost import CostModel

#: How a task's labels are priced: per label (token-level) or once per sentence.
LabelKind = Literal["token", "sentence"]


@dataclass(frozen=True)
class TimedSentence:
    """One sentence annotated in a tool.

    Attributes
    ----------
    n_tokens
        Its number of words ``m``.
    labels
        The tasks it was annotated on, each with its number of labels (entities of a
        token-level task; sentence-level tasks count 1 whatever is given).
    seconds
        The time the tool measured for the whole sentence.
    """

    n_tokens: int
    labels: Mapping[str, int]
    seconds: float


def nonnegative_least_squares(
    a: NDArray[np.float64], b: NDArray[np.float64], max_iter: int = 200
) -> NDArray[np.float64]:
    """``argmin_{x ≥ 0} ‖a·x − b‖²`` (Lawson-Hanson active set), shape (a.shape[1],).

    Columns are scaled to a largest entry of 1 first (and the solution scaled back), so
    that the stopping tolerance means the same for a feature counted in words as for one
    counted in sentences, however small a column's entries are (a max, not a norm: the
    squares of entries below 1e-154 underflow).
    """
    peaks = np.abs(a).max(axis=0, initial=0.0)
    scale = np.where(peaks > 0, peaks, 1.0)
    return _lawson_hanson(a / scale, b, max_iter) / scale


def _lawson_hanson(
    a: NDArray[np.float64], b: NDArray[np.float64], max_iter: int
) -> NDArray[np.float64]:
    n = a.shape[1]
    x = np.zeros(n)
    passive = np.zeros(n, dtype=bool)
    tol = 1e-10 * max(1.0, float(np.abs(a).max(initial=0.0)) * float(np.abs(b).max(initial=0.0)))
    for _ in range(max_iter):
        gradient = a.T @ (b - a @ x)
        candidates = ~passive & (gradient > tol)
        if not candidates.any():
            break
        passive[int(np.argmax(np.where(candidates, gradient, -np.inf)))] = True
        while True:
            z = np.zeros(n)
            z[passive] = np.linalg.lstsq(a[:, passive], b, rcond=None)[0]
            if (z[passive] > 0).all():
                x = z
                break
            # step back to the boundary: the first passive variable to reach 0 leaves
            shrinking = passive & (z <= 0)
            alpha = float(np.min(x[shrinking] / (x[shrinking] - z[shrinking])))
            x = x + alpha * (z - x)
            passive &= x > 1e-12
            x[~passive] = 0.0
    return x


@dataclass(frozen=True)
class FittedCosts:
    """Seconds per word and per label of each task, fitted to measured times.

    Attributes
    ----------
    seconds_per_word
        ``w``.
    seconds_per_label
        ``c_t`` per task (per entity of a token-level task, per sentence otherwise).
    kinds
        Each task's :data:`LabelKind`.
    n_sentences
        How many timed sentences the fit saw.
    r2
        Coefficient of determination of the fit on those sentences.
    """

    seconds_per_word: float
    seconds_per_label: Mapping[str, float]
    kinds: Mapping[str, LabelKind]
    n_sentences: int
    r2: float
    measured_seconds: float = field(default=0.0)

    def predict(self, sentences: Sequence[TimedSentence]) -> NDArray[np.float64]:
        """Fitted seconds of each sentence, shape (len(sentences),)."""
        a, _ = _design(sentences, list(self.seconds_per_label), self.kinds)
        coef = np.array([self.seconds_per_word, *self.seconds_per_label.values()])
        return a @ coef

    def cost_model(self, base: CostModel | None = None) -> CostModel:
        """The fit in the paper's unit (a word = 1): each task's per-label cost is
        ``c_t / w``; ``tp``/``ts`` of ``base`` stay for tasks the fit did not see."""
        base = base or CostModel()
        if self.seconds_per_word <= 0:
            raise SelectionError(
                "the fitted time per word is 0, so costs cannot be put in word units "
                "(time more sentences of different lengths)"
            )
        labels = {t: c / self.seconds_per_word for t, c in self.seconds_per_label.items()}
        return CostModel(tp=base.tp, ts=base.ts, task_costs=base.task_costs, label_costs=labels)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the coefficients, their word-unit prices and the fit's quality."""
        per_word = self.seconds_per_word
        return {
            "seconds_per_word": per_word,
            "seconds_per_label": dict(self.seconds_per_label),
            "kinds": dict(self.kinds),
            "label_costs": (
                {t: c / per_word for t, c in self.seconds_per_label.items()} if per_word > 0 else {}
            ),
            "n_sentences": self.n_sentences,
            "r2": self.r2,
            "measured_seconds": self.measured_seconds,
        }

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> FittedCosts:
        return cls(
            seconds_per_word=float(payload["seconds_per_word"]),
            seconds_per_label={t: float(c) for t, c in payload["seconds_per_label"].items()},
            kinds=dict(payload["kinds"]),
            n_sentences=int(payload["n_sentences"]),
            r2=float(payload["r2"]),
            measured_seconds=float(payload.get("measured_seconds", 0.0)),
        )

    def describe(self) -> str:
        """One line: the fitted prices in seconds and in word units."""
        per_label = ", ".join(
            f"{t} {c:.2f}s/{'entity' if self.kinds[t] == 'token' else 'sentence'}"
            for t, c in self.seconds_per_label.items()
        )
        return (
            f"costs fitted on {self.n_sentences} timed sentences: "
            f"{self.seconds_per_word:.2f}s/word, {per_label} (R² {self.r2:.2f})"
        )


def _design(
    sentences: Sequence[TimedSentence], tasks: list[str], kinds: Mapping[str, LabelKind]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    a = np.zeros((len(sentences), 1 + len(tasks)))
    b = np.zeros(len(sentences))
    for i, s in enumerate(sentences):
        a[i, 0] = s.n_tokens
        for j, task in enumerate(tasks, start=1):
            if task in s.labels:
                a[i, j] = float(s.labels[task]) if kinds[task] == "token" else 1.0
        b[i] = s.seconds
    return a, b


def fit_costs(sentences: Sequence[TimedSentence], kinds: Mapping[str, LabelKind]) -> FittedCosts:
    """Fit seconds per word and per label of each task to ``sentences`` (see module doc).

    Parameters
    ----------
    sentences
        Timed sentences; those without a positive finite time are left out.
    kinds
        Each task's :data:`LabelKind` (``token``: priced per label; ``sentence``: once).

    Raises
    ------
    SelectionError
        Fewer usable sentences than coefficients, or a task no sentence was annotated on.
    """
    usable = [s for s in sentences if np.isfinite(s.seconds) and s.seconds > 0]
    tasks = sorted({t for s in usable for t in s.labels})
    unknown = [t for t in tasks if t not in kinds]
    if unknown:
        raise SelectionError(f"no label kind (token or sentence) for task(s) {unknown}")
    if len(usable) < len(tasks) + 1:
        raise SelectionError(
            f"{len(usable)} timed sentence(s) cannot fit {len(tasks) + 1} cost coefficients "
            f"(per word and per label of {', '.join(tasks) or 'no task'})"
        )
    a, b = _design(usable, tasks, kinds)
    coef = nonnegative_least_squares(a, b)
    residual = b - a @ coef
    spread = float(((b - b.mean()) ** 2).sum())
    r2 = 1.0 - float((residual**2).sum()) / spread if spread > 0 else 1.0
    return FittedCosts(
        seconds_per_word=float(coef[0]),
        seconds_per_label={t: float(c) for t, c in zip(tasks, coef[1:], strict=True)},
        kinds={t: kinds[t] for t in tasks},
        n_sentences=len(usable),
        r2=r2,
        measured_seconds=float(b.sum()),
    )
