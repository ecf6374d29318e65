"""``hierarchical``: hierarchical supervision with shortcut connections (Sanh et al., HMTL).

Low-level tasks are supervised at low encoder layers and higher-level tasks at higher
layers: task ``t`` reads its features from the output of encoder layer ``k_t`` (1 = the
lowest Transformer layer). Because nothing above ``k_t`` is in the computation of task
``t``'s features, **its loss only updates layers ``1..k_t``, the embeddings and its head**,
never the layers above (HMTL §"Training": "the updates for a particular task affect the
layers associated with this task and all the layers below but not the layers above").
Higher tasks back-propagate through every layer below them, so their supervision still
shapes the lower representations. Layers above the highest read-out are dropped (they
would receive no gradient, which DDP refuses).

With ``hierarchy_shortcut`` (default), each task module also sees the embeddings: its
features are ``[h_{k_t}; e]``, the read-out layer's output concatenated with the
embedding layer's output (HMTL's shortcut connections; width ``2 × hidden``).

Config (``model`` section)::

    model:
      sharing: hierarchical
      hierarchy: {ner: 4, re: 6}   # read-out layer per task; unnamed tasks read the top
      hierarchy_shortcut: true

``hierarchy: null`` (default) places tasks by level: a task has level 1, or one more than
the highest level of the tasks it requires (``re`` needs ``ner``: level 2); level ``l`` of
``L`` reads layer ``round(n_layers · l / L)`` — on MiniLM-L6, ``ner`` at 3 and ``re`` at 6;
independent tasks (``dp`` + ``ner``) all read the top layer, which equals ``smt`` plus
shortcuts.

Works with BERT-style encoders (``encoder.encoder.layer``: BERT, RoBERTa, MiniLM, ELECTRA).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn
from transformers import PreTrainedModel

from mtal_ray.errors import ConfigError
from mtal_ray.models.config import ModelConfig
from mtal_ray.taskspec import TASK_SPECS


def task_levels(tasks: Sequence[str], requires: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Level of each task: 1, or 1 + the highest level among its required tasks."""
    levels: dict[str, int] = {}

    def level(task: str, seen: tuple[str, ...]) -> int:
        if task in levels:
            return levels[task]
        if task in seen:
            raise ConfigError(f"tasks: circular prerequisites through {task!r}")
        below = [level(r, (*seen, task)) for r in requires.get(task, ()) if r in tasks]
        levels[task] = 1 + max(below, default=0)
        return levels[task]

    for task in tasks:
        level(task, ())
    return levels


def readout_layers(
    tasks: Sequence[str],
    n_layers: int,
    hierarchy: Mapping[str, int] | None,
    requires: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, int]:
    """The encoder layer (1..``n_layers``) each task reads, checked against the encoder.

    Parameters
    ----------
    tasks
        Configured task names.
    n_layers
        Transformer layers of the encoder.
    hierarchy
        ``model.hierarchy``: explicit layers (unnamed tasks read ``n_layers``), or ``None``
        for the level-based default (see the module docstring).
    requires
        Task -> prerequisite tasks (default: from :data:`mtal_ray.taskspec.TASK_SPECS`).

    Raises
    ------
    ConfigError
        A named task that is not configured, or a layer outside ``1..n_layers``.
    """
    if hierarchy is None:
        if requires is None:
            requires = {t: TASK_SPECS[t].requires for t in tasks if t in TASK_SPECS}
        levels = task_levels(tasks, requires)
        top = max(levels.values(), default=1)
        return {t: max(1, round(n_layers * levels[t] / top)) for t in tasks}
    unknown = sorted(set(hierarchy) - set(tasks))
    if unknown:
        raise ConfigError(
            f"model.hierarchy: {', '.join(unknown)} not among the tasks ({', '.join(tasks)})"
        )
    layers = {t: int(hierarchy.get(t, n_layers)) for t in tasks}
    for task, layer in layers.items():
        if not 1 <= layer <= n_layers:
            raise ConfigError(
                f"model.hierarchy.{task}: layer {layer} is outside 1..{n_layers} "
                f"(the encoder has {n_layers} layers)"
            )
    return layers


class HierarchicalSupervision(nn.Module):
    """Each task reads its own encoder layer (plus the embeddings, with shortcuts).

    Parameters
    ----------
    encoder
        A BERT-style Hugging Face encoder; its layers above the highest read-out are
        removed.
    tasks
        Task names.
    config
        ``model`` section (``hierarchy``, ``hierarchy_shortcut``).

    Attributes
    ----------
    readout
        Task -> layer (1-based) its features come from.
    output_sizes
        Task -> feature width (``2 × hidden`` with shortcuts, else ``hidden``).
    """

    def __init__(self, encoder: PreTrainedModel, tasks: Sequence[str], config: ModelConfig) -> None:
        super().__init__()
        stack = getattr(getattr(encoder, "encoder", None), "layer", None)
        if not isinstance(stack, nn.ModuleList):
            raise ConfigError(
                f"model.sharing: 'hierarchical' needs a BERT-style encoder with "
                f"encoder.layer ({type(encoder).__name__} has none)"
            )
        self.tasks = list(tasks)
        self.readout = readout_layers(self.tasks, len(stack), config.hierarchy)
        self.shortcut = config.hierarchy_shortcut
        encoder.encoder.layer = nn.ModuleList(list(stack)[: max(self.readout.values())])
        self.encoder = encoder
        hidden = encoder.config.hidden_size
        width = 2 * hidden if self.shortcut else hidden
        self.output_sizes = dict.fromkeys(self.tasks, width)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """``{task: [batch, subwords, width]}``: layer ``readout[task]`` (+ embeddings)."""
        states = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True
        ).hidden_states  # states[0] = embeddings, states[k] = output of layer k
        out: dict[str, torch.Tensor] = {}
        by_layer: dict[int, torch.Tensor] = {}
        for task in self.tasks:
            layer = self.readout[task]
            if layer not in by_layer:  # tasks on the same layer share one tensor
                hidden = states[layer]
                by_layer[layer] = torch.cat([hidden, states[0]], -1) if self.shortcut else hidden
            out[task] = by_layer[layer]
        return out
