"""``MultiTaskModel``: an encoder under a sharing scheme, with one head per task.

Two entry points:

* ``model(batch, alphas)`` (``forward``) returns the per-task mean losses of a collated
  :class:`~mtal_ray.models.collate.Batch` (the training path; DDP/DeepSpeed wrap this).
  A task with no annotated unit in the batch contributes an exact, graph-connected zero.
* ``model.predict_proba(batch, entities="predicted")`` returns per task the raw
  probabilities documented by the task plugin (``mtal_ray.tasks``): token tasks
  ``probs [B, W, L]`` + ``word_mask``; ``dp`` ``arc_probs [B, W, W+1]``, ``heads``,
  ``label_probs [B, W, L]``; ``id`` ``probs [B, C]``; ``re`` ``pair_probs [B, P, 1+R]``,
  ``pair_mask``, ``pairs``, ``entities``. It does not switch modes or disable gradients:
  see :mod:`mtal_ray.models.inference` for deterministic vs MC-dropout use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn
from transformers import PreTrainedModel

from mtal_ray.data.spans import Span, bio_to_spans
from mtal_ray.models.collate import Batch
from mtal_ray.models.config import ModelConfig
from mtal_ray.models.schemes import sharing_class
from mtal_ray.tasks.base import Features, Task


def _task_order(tasks: Mapping[str, Task]) -> list[str]:
    """Tasks with their prerequisites first (``ner`` before ``re``)."""
    order: list[str] = []
    for name in tasks:
        for needed in tasks[name].requires:
            if needed not in order:
                order.append(needed)
        if name not in order:
            order.append(name)
    return order


class MultiTaskModel(nn.Module):
    """Encoder + sharing scheme + task heads.

    Parameters
    ----------
    tasks
        Task plugins (``mtal_ray.tasks.build_tasks``), in the configured order.
    encoder
        A Hugging Face encoder (``mtal_ray.models.encoder.load_encoder``).
    config
        The ``model`` config section.
    """

    def __init__(self, tasks: Mapping[str, Task], encoder: PreTrainedModel, config: ModelConfig):
        super().__init__()
        self.tasks = dict(tasks)
        self.config = config
        self.encoder_config = encoder.config
        self.order = _task_order(self.tasks)
        self.sharing = sharing_class(config.sharing)(encoder, list(self.tasks), config)
        hidden = encoder.config.hidden_size
        sizes = getattr(self.sharing, "output_sizes", {})  # e.g. hierarchical, sclstm
        self.heads = nn.ModuleDict(
            {
                name: task.build_head(sizes.get(name, hidden), config.dropout)
                for name, task in self.tasks.items()
            }
        )

    def features(
        self, batch: Batch, states: Mapping[str, Any] | None = None
    ) -> dict[str, Features]:
        """Word-level features per task (from ``states``, the sharing scheme's
        ``{task: [batch, subwords, hidden]}``, when given; else the scheme runs)."""
        if states is None:
            states = self.sharing(batch.input_ids, batch.attention_mask)
        out: dict[str, Features] = {}
        cache: dict[int, Features] = {}
        mask = batch.attention_mask.unsqueeze(-1).to(next(iter(states.values())).dtype)
        for name, hidden in states.items():
            if id(hidden) not in cache:  # smt: one tensor shared by all tasks
                index = batch.word_index.unsqueeze(-1).expand(-1, -1, hidden.size(-1))
                cache[id(hidden)] = Features(
                    words=hidden.gather(1, index),
                    word_mask=batch.word_mask,
                    root=hidden[:, 0],
                    sentence=(hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0),
                )
            out[name] = cache[id(hidden)]
        return out

    def forward(self, batch: Batch, alphas: Mapping[str, float] | None = None) -> dict[str, Any]:
        """Per-task mean losses ``{task: scalar}`` (label smoothing ``alphas[task]``, default 0)."""
        alphas = alphas or {}
        features = self.features(batch)
        return {
            name: task.loss(
                self.heads[name],
                features[name],
                batch.targets[name],
                float(alphas.get(name, 0.0)),
                gold_entities=batch.gold_entities,
            )
            for name, task in self.tasks.items()
        }

    def predict_proba(
        self,
        batch: Batch,
        entities: str | Sequence[Sequence[Span]] = "predicted",
        states: Mapping[str, Any] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Raw probabilities per task.

        Parameters
        ----------
        batch
            A collated batch (targets not needed).
        entities
            Mentions for ``re``: ``"predicted"`` (decoded from this pass's ``ner``
            probabilities; the inference setting), ``"gold"`` (the batch's gold spans), or
            explicit spans per row.
        states
            The sharing scheme's output, when the caller computed it (partial MC dropout).
        """
        features = self.features(batch, states)
        out: dict[str, dict[str, Any]] = {}
        for name in self.order:
            task = self.tasks[name]
            spans = None
            if task.requires:
                if entities == "predicted":
                    (mentions,) = task.requires  # the tagging task whose spans are the mentions
                    tags = self.tasks[mentions].decode(out[mentions], batch.n_words)
                    spans = [bio_to_spans(row[f"{mentions}.tags"]) for row in tags]
                elif entities == "gold":
                    spans = batch.gold_entities
                else:
                    spans = [list(row) for row in entities]  # type: ignore[union-attr]
            out[name] = task.probabilities(self.heads[name], features[name], spans)
        return out
