"""The training side of the AL loop's ports (:mod:`mtal_ray.ports`), on Ray Train.

:class:`RayTrainer` fits each round's model with :func:`~mtal_ray.training.trainer.train_model`
(a Ray Train run); :class:`CheckpointPredictor` loads a round's exported model in this
process to pre-fill a batch for human annotators.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from mtal_ray.ports import TrainOutcome


class RayTrainer:
    """:class:`~mtal_ray.ports.Trainer` on Ray Train, with the experiment's model section."""

    def __init__(self, model_cfg: Any) -> None:
        self.model_cfg = model_cfg

    def train(
        self,
        labeled: pa.Table,
        dev: pa.Table,
        test: pa.Table | None,
        tasks: Sequence[str],
        training: Any,
        output_dir: Path,
    ) -> TrainOutcome:
        from mtal_ray.training.trainer import train_model

        result = train_model(
            labeled, dev, list(tasks), self.model_cfg, training, output_dir, test=test
        )
        return TrainOutcome(
            checkpoint=str(result.checkpoint_dir),
            dev_scores={k: float(v) for k, v in result.dev_scores.items()},
            test_scores={k: float(v) for k, v in (result.test_scores or {}).items()},
            dev_gmean=result.dev_gmean,
            test_gmean=result.test_gmean,
            phases=dict(result.phases),
        )


class CheckpointPredictor:
    """:class:`~mtal_ray.ports.Predictor`: the exported model's predictions, in process."""

    def predict(self, checkpoint: str, rows: pa.Table) -> pa.Table | None:
        from mtal_ray.models.inference import predict
        from mtal_ray.training.checkpoint import load_checkpoint

        model, collator, _ = load_checkpoint(checkpoint)
        return predict(model, collator, rows)
