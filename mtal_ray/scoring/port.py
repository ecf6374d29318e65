"""The scoring side of the AL loop's ports (:mod:`mtal_ray.ports`), on Ray Data.

:class:`RayPoolScorer` scores a round's pool with a pool of MC-dropout actors
(:func:`~mtal_ray.scoring.pool.score_pool_to_file`) and fits temperatures on dev
(:func:`~mtal_ray.scoring.calibration.calibrate_checkpoint`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from mtal_ray.ports import ScoringProgress


class RayPoolScorer:
    """:class:`~mtal_ray.ports.PoolScorer` with Ray Data actors (metrics under ``experiment``)."""

    def __init__(self, experiment: str | None = None) -> None:
        self.experiment = experiment

    def calibrate(
        self, checkpoint: str, dev: pa.Table, tasks: Sequence[str] | None
    ) -> dict[str, float]:
        from mtal_ray.scoring.calibration import calibrate_checkpoint

        return calibrate_checkpoint(checkpoint, dev, tasks)

    def score(
        self,
        pool: pa.Table,
        checkpoint: str,
        output: Path,
        scoring: Any,
        progress: ScoringProgress | None = None,
    ) -> dict[str, float]:
        from mtal_ray.scoring.pool import score_pool_to_file

        phases: dict[str, float] = {}
        score_pool_to_file(
            pool,
            checkpoint,
            output,
            scoring,
            experiment=self.experiment,
            progress=progress,
            phases=phases,
        )
        return phases
