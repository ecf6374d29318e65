"""Production wiring of the loop's ports: Ray Train, Ray Data, and the configured annotator."""

from __future__ import annotations

from typing import Any

from mtal_ray.driver.annotators import FileAnnotator, OracleAnnotator
from mtal_ray.ports import Annotator, LoopPorts


def ray_ports(config: Any) -> LoopPorts:
    """The Ray-backed trainer and pool scorer, and the annotator of ``annotation.mode``."""
    from mtal_ray.scoring.port import RayPoolScorer
    from mtal_ray.training.port import CheckpointPredictor, RayTrainer

    predictor = CheckpointPredictor()
    annotator: Annotator
    if config.annotation.mode == "oracle":
        annotator = OracleAnnotator()
    elif config.annotation.mode == "label-studio":
        from mtal_ray.label_studio.annotator import LabelStudioAnnotator

        annotator = LabelStudioAnnotator(
            config.annotation.label_studio,
            predictor,
            wait=config.annotation.wait,
            poll_seconds=config.annotation.poll_seconds,
        )
    else:
        annotator = FileAnnotator(predictor)
    return LoopPorts(
        trainer=RayTrainer(config.model),
        scorer=RayPoolScorer(config.tracking.experiment),
        annotator=annotator,
        predictor=predictor,
    )
