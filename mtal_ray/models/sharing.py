"""Parameter-sharing schemes: how tasks share the encoder (paper §5.3).

* ``st`` (:class:`SingleTask`): one task, one encoder.
* ``smt`` (:class:`SharedEncoder`): one shared encoder, one head per task.
* ``cmt`` (:class:`GatedTopLayers`): the bottom ``k`` encoder layers are shared; the top
  layers exist in ``t + 1`` copies (one shared, one per task), and task ``i`` reads the
  gated combination ``g = a ⊙ s + (1 − a) ⊙ u`` with ``a = σ(W[s; u] + b)`` of the shared
  output ``s`` and its own output ``u`` (Rotman & Reichart, 2019).

Every scheme is an ``nn.Module`` built as ``Scheme(encoder, tasks, config)`` whose
``forward(input_ids, attention_mask)`` returns ``{task: [batch, subwords, hidden]}``.
Names are registered in :mod:`mtal_ray.models.schemes`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.masking_utils import create_bidirectional_mask

from mtal_ray.errors import ConfigError
from mtal_ray.models.config import ModelConfig


class SharedEncoder(nn.Module):
    """``smt``: every task reads the same encoder output."""

    def __init__(self, encoder: PreTrainedModel, tasks: Sequence[str], config: ModelConfig) -> None:
        super().__init__()
        self.encoder = encoder
        self.tasks = list(tasks)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """``{task: [batch, subwords, hidden]}`` (the same tensor for every task)."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return dict.fromkeys(self.tasks, hidden)


class SingleTask(SharedEncoder):
    """``st``: a shared encoder restricted to exactly one task."""

    def __init__(self, encoder: PreTrainedModel, tasks: Sequence[str], config: ModelConfig) -> None:
        if len(tasks) != 1:
            raise ConfigError(
                f"model.sharing: 'st' trains one task, got {len(tasks)} ({', '.join(tasks)})"
            )
        super().__init__(encoder, tasks, config)


class Gate(nn.Module):
    """``g = a ⊙ s + (1 − a) ⊙ u`` with ``a = σ(W[s; u] + b)``."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.linear = nn.Linear(2 * hidden_size, hidden_size)

    def forward(self, shared: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
        """Gated combination, same shape as the inputs."""
        a = torch.sigmoid(self.linear(torch.cat([shared, own], dim=-1)))
        return a * shared + (1 - a) * own


def encoder_layers(encoder: PreTrainedModel) -> nn.ModuleList:
    """The transformer layer stack of a BERT-style encoder (``encoder.encoder.layer``)."""
    stack = getattr(getattr(encoder, "encoder", None), "layer", None)
    if not isinstance(stack, nn.ModuleList):
        raise ConfigError(
            f"model.sharing: 'cmt' needs a BERT-style encoder with encoder.layer "
            f"({type(encoder).__name__} has none)"
        )
    return stack


def run_layers(layers: Sequence[nn.Module], hidden: torch.Tensor, mask: object) -> torch.Tensor:
    """``hidden`` through BERT-style ``layers`` (``layer(hidden, mask)``) in order."""
    for layer in layers:
        out = layer(hidden, mask)
        hidden = out[0] if isinstance(out, tuple) else out
    return hidden


def layer_mask(config: object, hidden: torch.Tensor, attention_mask: torch.Tensor) -> object:
    """The attention mask BERT-style layers take, for ``hidden`` [batch, subwords, h]."""
    return create_bidirectional_mask(
        config=config, inputs_embeds=hidden, attention_mask=attention_mask
    )


class GatedTopLayers(nn.Module):
    """``cmt``: shared bottom layers, t+1 copies of the top layers, per-task gates."""

    def __init__(self, encoder: PreTrainedModel, tasks: Sequence[str], config: ModelConfig) -> None:
        super().__init__()
        layers = encoder_layers(encoder)
        n_layers = len(layers)
        split = config.cmt_shared_layers
        if split is None:
            split = round(2 * n_layers / 3)
        if not 0 <= split < n_layers:
            raise ConfigError(
                f"model.cmt_shared_layers: {split} must be below the encoder's {n_layers} layers"
            )
        self.tasks = list(tasks)
        self.split = split
        top = list(layers[split:])
        encoder.encoder.layer = nn.ModuleList(layers[:split])
        self.bottom = encoder
        self.shared_top = nn.ModuleList(top)
        self.task_top = nn.ModuleDict(
            {t: nn.ModuleList(copy.deepcopy(layer) for layer in top) for t in self.tasks}
        )
        hidden = encoder.config.hidden_size
        self.gates = nn.ModuleDict({t: Gate(hidden) for t in self.tasks})

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """``{task: gated [batch, subwords, hidden]}``."""
        hidden = self.bottom(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.top(hidden, attention_mask)

    def top(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{task: gated output}`` from the shared bottom layers' output ``hidden``."""
        mask = layer_mask(self.bottom.config, hidden, attention_mask)
        shared = run_layers(self.shared_top, hidden, mask)
        return {
            t: self.gates[t](shared, run_layers(self.task_top[t], hidden, mask)) for t in self.tasks
        }
