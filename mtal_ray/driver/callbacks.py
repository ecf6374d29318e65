"""Observers of the active-learning loop: callbacks with a few hooks.

The loop computes; everything that *watches* it — the console, MLflow, Prometheus, a
sweep's Tune reports — is a :class:`LoopCallback` (in the spirit of Ray Train's
``UserCallback``). The hooks, in the order the loop calls them::

    on_run_start ─┬─ on_step_start ─ [on_scoring_progress …] ─ on_step_end ─┐
                  │                                     (on_round_end when an iteration ends)
                  └──────────────────────────── repeated ──────────────────┘
    on_run_end (finished | awaiting_annotation | failed)

Callbacks read the :class:`RunInfo` they are given; the only thing a callback may write
back is ``run.state.mlflow_run_id`` in :meth:`LoopCallback.on_run_start` (the loop persists
it right after). The observers themselves live in :mod:`mtal_ray.driver.observers`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mtal_ray.data.lineage import SplitSummary
    from mtal_ray.driver.state import LoopState, RoundRecord, Step


@dataclass
class RunInfo:
    """What observers see of a run."""

    run_dir: Path
    config: Any
    tasks: list[str]
    state: LoopState
    resumed: bool
    #: What reading the corpus normalised or dropped, for the log (one line each).
    warnings: list[str] = field(default_factory=list)
    #: Facts of the run beside its config, for the tracking store's params.
    params: dict[str, Any] = field(default_factory=dict)
    #: The splits the run reads (name, source, rows, digest), for dataset lineage.
    datasets: list[SplitSummary] = field(default_factory=list)


@dataclass
class StepReport:
    """What one finished step produced, for the observers.

    ``metrics`` are logged at step ``iteration``; ``artifacts`` are (file, folder in the
    tracking store); ``lines`` are human-readable progress lines.
    """

    step: Step
    iteration: int
    metrics: dict[str, float] = field(default_factory=dict)
    artifacts: list[tuple[Path, str | None]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


@dataclass
class Summary:
    """What a run returns to the launcher (also written to ``summary.json`` when finished)."""

    run_dir: str
    status: str  # "finished" | "stopped" (every task stopped early) | "awaiting_annotation"
    message: str
    rows: list[dict[str, Any]]
    mlflow_run_id: str | None
    #: Per task, when ``al.stopping`` is set: ``stopped_at``, ``criterion``, ``value``, ``cost``.
    stopping: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class RunOutcome:
    """How a run ended: ``finished``, ``awaiting_annotation`` or ``failed``."""

    status: str
    summary: Summary | None = None
    error: BaseException | None = None
    #: Files of a finished run for the tracking store: (file, folder).
    artifacts: list[tuple[Path, str | None]] = field(default_factory=list)


class LoopCallback:
    """Base class: override the hooks you need (each does nothing by default)."""

    def on_run_start(self, run: RunInfo) -> None:
        """The state is loaded (new or resumed); nothing has run yet."""

    def on_step_start(self, run: RunInfo, step: Step) -> None:
        """``step`` of ``run.state.iteration`` is about to run."""

    def on_scoring_progress(self, run: RunInfo, done: int, total: int, seconds: float) -> None:
        """Scoring of the pool has reached ``done`` of ``total`` rows."""

    def on_step_end(self, run: RunInfo, report: StepReport) -> None:
        """A step finished and its result is persisted."""

    def on_round_end(self, run: RunInfo, record: RoundRecord) -> None:
        """An iteration finished (after its update, or its training for the last one)."""

    def on_run_end(self, run: RunInfo, outcome: RunOutcome) -> None:
        """The run finished, waits for annotation, or failed (``outcome.error``)."""


class CallbackList(LoopCallback):
    """Calls each callback in order."""

    def __init__(self, callbacks: Iterable[LoopCallback]) -> None:
        self.callbacks = list(callbacks)

    def on_run_start(self, run: RunInfo) -> None:
        for cb in self.callbacks:
            cb.on_run_start(run)

    def on_step_start(self, run: RunInfo, step: Step) -> None:
        for cb in self.callbacks:
            cb.on_step_start(run, step)

    def on_scoring_progress(self, run: RunInfo, done: int, total: int, seconds: float) -> None:
        for cb in self.callbacks:
            cb.on_scoring_progress(run, done, total, seconds)

    def on_step_end(self, run: RunInfo, report: StepReport) -> None:
        for cb in self.callbacks:
            cb.on_step_end(run, report)

    def on_round_end(self, run: RunInfo, record: RoundRecord) -> None:
        for cb in self.callbacks:
            cb.on_round_end(run, record)

    def on_run_end(self, run: RunInfo, outcome: RunOutcome) -> None:
        for cb in self.callbacks:
            cb.on_run_end(run, outcome)
