"""Training on Ray Train (DDP or DeepSpeed ZeRO) and checkpoints.

Public API:

* :func:`~mtal_ray.training.trainer.train_model` ``(train, dev, tasks, model_cfg,
  training_cfg, output_dir, test=None) -> TrainResult`` — one training run.
* :func:`~mtal_ray.training.checkpoint.load_checkpoint` ``(path) -> (model, collator,
  info)`` — works outside Ray (import it from ``mtal_ray.training.checkpoint`` to avoid
  importing Ray at all).
* :class:`~mtal_ray.training.config.TrainingConfig` — the ``training`` config section.
"""

import time
from typing import TYPE_CHECKING

from mtal_ray.lazy_exports import lazy_getattr

#: When this process first imported the training package (a Train worker: as it unpickles
#: its training function, before torch and transformers): the start of its imports phase.
IMPORTED_AT = time.time()

if TYPE_CHECKING:
    from mtal_ray.training.checkpoint import CheckpointInfo, LoadedCheckpoint, load_checkpoint
    from mtal_ray.training.config import TrainingConfig
    from mtal_ray.training.trainer import TrainResult, train_model

#: Public name -> the module defining it, imported on first use (PEP 562), so that
#: importing one light submodule (e.g. the config section) does not import torch.
_EXPORTS = {
    "CheckpointInfo": "mtal_ray.training.checkpoint",
    "LoadedCheckpoint": "mtal_ray.training.checkpoint",
    "load_checkpoint": "mtal_ray.training.checkpoint",
    "TrainingConfig": "mtal_ray.training.config",
    "TrainResult": "mtal_ray.training.trainer",
    "train_model": "mtal_ray.training.trainer",
}


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())


__all__ = [
    "CheckpointInfo",
    "LoadedCheckpoint",
    "TrainResult",
    "TrainingConfig",
    "load_checkpoint",
    "train_model",
]
