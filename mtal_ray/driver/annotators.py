"""The two annotators of the loop (``annotation.mode``): the oracle and people.

* :class:`OracleAnnotator` — simulation: the gold labels of the selected rows are revealed
  at once (the loop reads them from the training split).
* :class:`FileAnnotator` — people: the batch is exported to ``RUN_DIR/annotation/round_N/``
  in the corpus's own format with the model's predictions pre-filled (by a
  :class:`~mtal_ray.ports.Predictor`) and the loop waits until ``mtal-ray import`` has
  stored ``imported.parquet`` beside it.
"""

from __future__ import annotations

from mtal_ray.driver.annotation import IMPORTED, MANIFEST, export_batch, round_dir
from mtal_ray.ports import AnnotationRequest, Predictor


class OracleAnnotator:
    """Reveals the gold annotation: always available."""

    def annotate(self, request: AnnotationRequest) -> str | None:
        return None


class FileAnnotator:
    """Exports the batch for people and waits for its import."""

    def __init__(self, predictor: Predictor | None = None) -> None:
        self.predictor = predictor

    def annotate(self, request: AnnotationRequest) -> str | None:
        folder = round_dir(request.run_dir, request.iteration)
        if (folder / IMPORTED).exists():
            return None
        tasks_per_id = dict(request.tasks_per_id)
        if not (folder / MANIFEST).exists():
            predictions = None
            if self.predictor is not None and request.checkpoint is not None:
                predictions = self.predictor.predict(request.checkpoint, request.rows)
            export_batch(
                request.run_dir,
                request.iteration,
                request.rows,
                tasks_per_id,
                predictions,
                request.corpus_format,
            )
        return (
            f"round {request.iteration}: {len(tasks_per_id)} sentences wait for annotation in "
            f"{folder}/ (model predictions pre-filled). Correct them, then run: "
            f"mtal-ray import {request.run_dir} <files>  (it validates them and resumes the run)."
        )
