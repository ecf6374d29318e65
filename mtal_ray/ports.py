"""The ports of the active-learning loop: what it needs from training, scoring and annotation.

:class:`~mtal_ray.driver.loop.ActiveLearningLoop` talks only to these small interfaces
(plus a :class:`~mtal_ray.selection.base.Selector`, built from the config), so the loop
can run with in-memory fakes in a unit test and with Ray-backed parts in production:

==============  ============================================  =================================
port            production implementation                     what it does
==============  ============================================  =================================
``Trainer``     :class:`mtal_ray.training.port.RayTrainer`    fit on the labeled set, evaluate
``PoolScorer``  :class:`mtal_ray.scoring.port.RayPoolScorer`  confidences of the pool → Parquet
``Predictor``   :class:`mtal_ray.training.port.CheckpointPredictor`  pre-fill a human batch
``Annotator``   :mod:`mtal_ray.driver.annotators`             oracle, or export / import files
==============  ============================================  =================================

This module is pure (no torch, no Ray): ports are structural (:class:`typing.Protocol`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

#: ``progress(done, total, seconds)`` — rows scored so far.
ScoringProgress = Callable[[int, int, float], None]


@dataclass(frozen=True)
class TrainOutcome:
    """What one training produced: where the model is and how it scores."""

    checkpoint: str
    dev_scores: Mapping[str, float]
    test_scores: Mapping[str, float] = field(default_factory=dict)
    dev_gmean: float | None = None
    test_gmean: float | None = None
    #: Where the training's wall time went, seconds per phase (``setup``, ``start``,
    #: ``model_load``, ``steps``...: :data:`mtal_ray.training.trainer.TRAIN_PHASES`).
    phases: Mapping[str, float] = field(default_factory=dict)


class Trainer(Protocol):
    """Fits a multi-task model on the labeled rows and evaluates it on dev (and test)."""

    def train(
        self,
        labeled: pa.Table,
        dev: pa.Table,
        test: pa.Table | None,
        tasks: Sequence[str],
        training: Any,
        output_dir: Path,
    ) -> TrainOutcome:
        """Train with the round's ``training`` config into ``output_dir``."""
        ...


class PoolScorer(Protocol):
    """Writes the per-task confidences of every pool row to a Parquet table."""

    def calibrate(self, checkpoint: str, dev: pa.Table, tasks: Sequence[str] | None) -> dict:
        """One temperature per task fitted on ``dev`` (temperature scaling)."""
        ...

    def score(
        self,
        pool: pa.Table,
        checkpoint: str,
        output: Path,
        scoring: Any,
        progress: ScoringProgress | None = None,
    ) -> Mapping[str, float] | None:
        """Score ``pool`` (``id``, ``tokens``) with the model in ``checkpoint``; may return
        where the time went (seconds per phase, e.g. ``first_block``, ``stream``, ``write``)."""
        ...


class Predictor(Protocol):
    """The model's predictions for some rows (to pre-fill a batch for people)."""

    def predict(self, checkpoint: str, rows: pa.Table) -> pa.Table | None:
        """Rows with each task's columns filled by the model (``None``: no predictions)."""
        ...


@dataclass(frozen=True)
class AnnotationRequest:
    """One round's selection, to be annotated.

    ``rows`` are the selected rows of the training split (``id``, ``tokens`` and, in
    simulation, gold columns that an annotator for people must never show).
    """

    run_dir: Path
    iteration: int
    tasks_per_id: Mapping[str, list[str]]
    rows: pa.Table
    checkpoint: str | None
    corpus_format: str


class Annotator(Protocol):
    """Gets a selection annotated."""

    def annotate(self, request: AnnotationRequest) -> str | None:
        """``None`` when the annotation is available now; otherwise where it waits (message)."""
        ...


@dataclass(frozen=True)
class LoopPorts:
    """The parts one AL run is wired to (:func:`mtal_ray.driver.wiring.ray_ports` in production)."""

    trainer: Trainer
    scorer: PoolScorer
    annotator: Annotator
    #: The models' predictions on the stop set (``al.stopping: stabilizing-predictions``).
    predictor: Predictor | None = None
