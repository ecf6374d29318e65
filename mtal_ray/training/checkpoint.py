"""Model checkpoints on disk: save, and load for inference anywhere (no Ray needed).

A checkpoint directory holds

* ``model.pt`` — the full fp32 ``state_dict`` of the :class:`MultiTaskModel`;
* ``meta.json`` — tasks, label vocabularies (from the training split), the ``model``
  section, the ``training`` section, the step and the dev scores at that step;
* ``encoder/`` — the encoder's config and tokenizer, so the checkpoint is self-contained
  (the pre-trained weights are not needed again);
* optionally ``dev_predictions.parquet`` (the dev predictions at that step) and the
  training state used to resume (``train_state.pt`` for DDP, ``deepspeed/`` for
  DeepSpeed). A DeepSpeed ZeRO-3 checkpoint may lack ``model.pt``; :func:`load_checkpoint`
  then rebuilds it from the ZeRO shards.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch

from mtal_ray.data.atomic import atomic_directory
from mtal_ray.data.vocab import LabelVocab
from mtal_ray.errors import MtalError
from mtal_ray.models.build import build_model
from mtal_ray.models.collate import Collator
from mtal_ray.models.config import ModelConfig
from mtal_ray.models.multitask import MultiTaskModel
from mtal_ray.tasks.registry import build_tasks
from mtal_ray.training.safe_load import load_tensors

MODEL_FILE = "model.pt"
META_FILE = "meta.json"
ENCODER_DIR = "encoder"
PREDICTIONS_FILE = "dev_predictions.parquet"
FORMAT_VERSION = 1


class CheckpointError(MtalError):
    """A checkpoint directory is missing or incomplete; the message names it."""


@dataclass
class CheckpointInfo:
    """What a checkpoint says about itself (``meta.json``)."""

    tasks: list[str]
    vocabs: dict[str, LabelVocab]
    model: ModelConfig
    training: dict[str, Any] = field(default_factory=dict)
    step: int = 0
    dev_scores: dict[str, float] = field(default_factory=dict)
    dev_gmean: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "format": FORMAT_VERSION,
            "tasks": self.tasks,
            "vocabs": {t: v.to_dict() for t, v in self.vocabs.items()},
            "model": self.model.model_dump(),
            "training": self.training,
            "step": self.step,
            "dev_scores": self.dev_scores,
            "dev_gmean": self.dev_gmean,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CheckpointInfo:
        """Inverse of :meth:`to_json`."""
        return cls(
            tasks=list(data["tasks"]),
            vocabs={t: LabelVocab.from_dict(v) for t, v in data["vocabs"].items()},
            model=ModelConfig(**data["model"]),
            training=dict(data.get("training", {})),
            step=int(data.get("step", 0)),
            dev_scores=dict(data.get("dev_scores", {})),
            dev_gmean=float(data.get("dev_gmean", 0.0)),
        )


class LoadedCheckpoint(NamedTuple):
    """``(model, collator, info)`` — unpacks like a tuple."""

    model: MultiTaskModel
    collator: Collator
    info: CheckpointInfo


def save_checkpoint(
    directory: str | Path,
    model: MultiTaskModel,
    collator: Collator,
    info: CheckpointInfo,
    state_dict: Mapping[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``model.pt``, ``meta.json`` and ``encoder/`` into ``directory``.

    ``state_dict`` overrides ``model.state_dict()`` (e.g. ``None`` for weights kept only
    as ZeRO shards: pass ``{}`` to skip ``model.pt``).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = model.state_dict() if state_dict is None else state_dict
    if weights:
        torch.save({k: v.detach().cpu() for k, v in weights.items()}, directory / MODEL_FILE)
    encoder_dir = directory / ENCODER_DIR
    model.encoder_config.save_pretrained(encoder_dir)
    collator.tokenizer.save_pretrained(encoder_dir)
    (directory / META_FILE).write_text(json.dumps(info.to_json(), indent=2))
    return directory


def read_info(directory: str | Path) -> CheckpointInfo:
    """The :class:`CheckpointInfo` of a checkpoint directory."""
    meta = Path(directory) / META_FILE
    if not meta.is_file():
        raise CheckpointError(f"{directory}: not a checkpoint (no {META_FILE})")
    return CheckpointInfo.from_json(json.loads(meta.read_text()))


def _state_dict(directory: Path) -> dict[str, torch.Tensor]:
    if (directory / MODEL_FILE).is_file():
        return load_tensors(directory / MODEL_FILE, "model weights")
    if (directory / "deepspeed").is_dir():
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

        return get_fp32_state_dict_from_zero_checkpoint(str(directory / "deepspeed"))
    raise CheckpointError(f"{directory}: no {MODEL_FILE} and no deepspeed/ shards")


def load_checkpoint(directory: str | Path, device: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Rebuild the model of a checkpoint for inference (works outside Ray).

    Returns ``(model, collator, info)``; the model is in eval mode on ``device``.
    """
    directory = Path(directory)
    info = read_info(directory)
    tasks = build_tasks(info.tasks, info.vocabs)
    config = info.model.updated(encoder=str(directory / ENCODER_DIR))
    model, collator = build_model(tasks, config, pretrained=False)
    model.load_state_dict(_state_dict(directory))
    model.config = info.model
    model.to(device).eval()
    return LoadedCheckpoint(model, collator, info)


def export_inference_checkpoint(source: str | Path, target: str | Path) -> Path:
    """Copy a training checkpoint to ``target`` without its resume state.

    DeepSpeed shards are converted to ``model.pt`` on the way.
    """
    source, target = Path(source), Path(target)
    with atomic_directory(target) as tmp:
        for name in (META_FILE, PREDICTIONS_FILE):
            if (source / name).is_file():
                shutil.copy2(source / name, tmp / name)
        shutil.copytree(source / ENCODER_DIR, tmp / ENCODER_DIR)
        if (source / MODEL_FILE).is_file():
            shutil.copy2(source / MODEL_FILE, tmp / MODEL_FILE)
        else:
            torch.save(_state_dict(source), tmp / MODEL_FILE)
    return target
