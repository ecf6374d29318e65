"""Building a model and its collator from task plugins and a ``ModelConfig``."""

from __future__ import annotations

from collections.abc import Mapping

from mtal_ray.models.collate import Collator
from mtal_ray.models.config import ModelConfig
from mtal_ray.models.encoder import load_encoder, load_tokenizer
from mtal_ray.models.multitask import MultiTaskModel
from mtal_ray.tasks.base import Task


def build_model(
    tasks: Mapping[str, Task], config: ModelConfig, pretrained: bool = True
) -> tuple[MultiTaskModel, Collator]:
    """A :class:`MultiTaskModel` and the matching :class:`Collator`.

    ``pretrained=False`` builds the encoder from its config only (a checkpoint's weights
    will be loaded over it).
    """
    encoder = load_encoder(config.encoder, pretrained=pretrained)
    model = MultiTaskModel(tasks, encoder, config)
    return model, Collator(load_tokenizer(config.encoder), tasks, config.max_subwords)
