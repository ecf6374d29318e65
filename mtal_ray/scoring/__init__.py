"""Scoring the unlabeled pool: MC-dropout confidences with Ray Data tasks or actors.

* :func:`~mtal_ray.scoring.pool.score_pool` / :func:`~mtal_ray.scoring.pool.score_pool_to_file`
  — the whole pool through ``Dataset.map_batches`` with
  :class:`~mtal_ray.scoring.mc_dropout.MCDropoutScorer` s in warm task workers (CPU) or a
  pool of actors (``scoring.compute``).
* :mod:`~mtal_ray.scoring.table` — the confidence table's schema (what selection reads)
  and its atomic Parquet I/O.
* :class:`~mtal_ray.scoring.config.ScoringConfig` — the ``scoring`` config section.
* :mod:`~mtal_ray.scoring.model_adapter` — the trained model behind the scorer (torch);
  :mod:`~mtal_ray.scoring.calibration` — temperatures fitted on dev.
* ``mtal-ray score`` — :mod:`mtal_ray.cli.scoring`.

The confidence formulas themselves live in :mod:`mtal_ray.confidence` (pure numpy).
"""

from typing import TYPE_CHECKING

from mtal_ray.lazy_exports import lazy_getattr

if TYPE_CHECKING:
    from mtal_ray.scoring.config import ScoringConfig
    from mtal_ray.scoring.mc_dropout import MCDropoutScorer
    from mtal_ray.scoring.outputs import TaskOutput, score_outputs
    from mtal_ray.scoring.pool import score_pool, score_pool_to_file
    from mtal_ray.scoring.table import (
        check_complete,
        confidence_schema,
        read_confidence_table,
        write_confidence_table,
    )

#: Public name -> the module defining it, imported on first use (PEP 562), so that
#: importing one light submodule (e.g. the config section) does not import torch.
_EXPORTS = {
    "ScoringConfig": "mtal_ray.scoring.config",
    "MCDropoutScorer": "mtal_ray.scoring.mc_dropout",
    "TaskOutput": "mtal_ray.scoring.outputs",
    "score_outputs": "mtal_ray.scoring.outputs",
    "score_pool": "mtal_ray.scoring.pool",
    "score_pool_to_file": "mtal_ray.scoring.pool",
    "check_complete": "mtal_ray.scoring.table",
    "confidence_schema": "mtal_ray.scoring.table",
    "read_confidence_table": "mtal_ray.scoring.table",
    "write_confidence_table": "mtal_ray.scoring.table",
}


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())


__all__ = [
    "MCDropoutScorer",
    "ScoringConfig",
    "TaskOutput",
    "check_complete",
    "confidence_schema",
    "read_confidence_table",
    "score_outputs",
    "score_pool",
    "score_pool_to_file",
    "write_confidence_table",
]
