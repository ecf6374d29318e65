"""The trained multi-task model seen through the scorer's :class:`ScoringModel` interface.

:class:`MultiTaskScoringModel` wraps a :class:`~mtal_ray.models.MultiTaskModel` and its
collator:

* :meth:`~MultiTaskScoringModel.deterministic` runs ``predict_proba`` under
  :func:`mtal_ray.models.deterministic` (eval mode) and also returns the predicted
  entities, which become the fixed ``re`` candidates of the stochastic passes — so every
  pass classifies the same entity pairs and eq. 3 compares like with like.
* :meth:`~MultiTaskScoringModel.stochastic` runs ``copies`` passes under
  :func:`mtal_ray.models.mc_dropout` as one forward over the batch repeated ``copies``
  times: dropout draws an independent mask for every element, so copy ``c`` is exactly
  one MC-dropout pass, and a few large matrix multiplies replace many small ones.

Scoring needs arc probabilities, never decoded trees, so the wrapper turns the ``dp``
task's tree decoding off in its own copy of the model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from mtal_ray.data.spans import bio_to_spans
from mtal_ray.scoring.outputs import TaskOutput

__all__ = ["MultiTaskScoringModel", "load_scoring_model"]


def _np(value: torch.Tensor) -> np.ndarray:
    return (
        value.detach().float().cpu().numpy() if value.is_floating_point() else value.cpu().numpy()
    )


def _repeat(batch: Any, copies: int) -> Any:
    """The collated batch stacked ``copies`` times along the batch axis."""
    from mtal_ray.models.collate import Batch

    if copies == 1:
        return batch
    return Batch(
        ids=batch.ids * copies,
        table=batch.table,
        input_ids=batch.input_ids.repeat(copies, 1),
        attention_mask=batch.attention_mask.repeat(copies, 1),
        word_index=batch.word_index.repeat(copies, 1),
        word_mask=batch.word_mask.repeat(copies, 1),
        n_words=batch.n_words * copies,
    )


class MultiTaskScoringModel:
    """:class:`~mtal_ray.scoring.protocol.ScoringModel` over a trained multi-task model.

    Parameters
    ----------
    model : mtal_ray.models.MultiTaskModel
    collator : mtal_ray.models.Collator
    device : str or torch.device
    """

    def __init__(self, model: Any, collator: Any, device: str | torch.device = "cpu") -> None:
        self.model = model.to(device)
        self.collator = collator
        self.device = device
        dp = self.model.tasks.get("dp")
        if dp is not None and hasattr(dp, "tree_decoding"):
            dp.tree_decoding = False

    @property
    def tasks(self) -> tuple[str, ...]:
        """The model's tasks in configured order."""
        return tuple(self.model.tasks)

    def _collate(self, tokens: Sequence[Sequence[str]]) -> Any:
        table = pa.table(
            {"id": [str(i) for i in range(len(tokens))], "tokens": [list(t) for t in tokens]}
        )
        return self.collator(table, with_targets=False).to(self.device)

    def _outputs(
        self,
        probs: Mapping[str, Mapping[str, Any]],
        tasks: Sequence[str],
        n_words: Sequence[int],
        count_entities: bool,
    ) -> dict[str, TaskOutput]:
        out: dict[str, TaskOutput] = {}
        for name in tasks:
            p = probs[name]
            if "arc_probs" in p:
                out[name] = TaskOutput("arc", _np(p["arc_probs"]), _np(p["word_mask"]))
            elif "pair_probs" in p:
                n_ent = np.array([len(e) for e in p["entities"]]) if count_entities else None
                out[name] = TaskOutput("pair", _np(p["pair_probs"]), _np(p["pair_mask"]), n_ent)
            elif p["probs"].dim() == 3:
                n_ent = None
                if count_entities:
                    task = self.model.tasks[name]
                    column = task.columns[0]
                    decoded = task.decode(p, n_words)
                    if column.endswith(".tags"):
                        n_ent = np.array([len(bio_to_spans(row[column])) for row in decoded])
                out[name] = TaskOutput("token", _np(p["probs"]), _np(p["word_mask"]), n_ent)
            else:
                out[name] = TaskOutput("class", _np(p["probs"]))
        return out

    def deterministic(
        self, tokens: Sequence[Sequence[str]], tasks: Sequence[str]
    ) -> tuple[Mapping[str, TaskOutput], Any]:
        """Dropout-off outputs; the context holds the collated batch and ``re`` entities."""
        from mtal_ray.models.inference import deterministic

        batch = self._collate(tokens)
        with deterministic(self.model):
            probs = self.model.predict_proba(batch)
        entities = probs["re"]["entities"] if "re" in probs else None
        context = {"batch": batch, "entities": entities}
        return self._outputs(probs, tasks, batch.n_words, count_entities=True), context

    def stochastic(
        self, tokens: Sequence[Sequence[str]], tasks: Sequence[str], copies: int, context: Any
    ) -> list[Mapping[str, TaskOutput]]:
        """``copies`` MC-dropout passes in one forward over the repeated batch."""
        from mtal_ray.models.inference import mc_dropout

        context = context or {}
        batch = _repeat(context.get("batch") or self._collate(tokens), copies)
        found = context.get("entities")
        entities = "predicted" if found is None else list(found) * copies
        with mc_dropout(self.model):
            probs = self.model.predict_proba(batch, entities=entities)
        stacked = self._outputs(probs, tasks, batch.n_words, count_entities=False)
        n = len(tokens)
        return [
            {
                name: TaskOutput(
                    o.kind,
                    o.probs[c * n : (c + 1) * n],
                    None if o.mask is None else o.mask[c * n : (c + 1) * n],
                )
                for name, o in stacked.items()
            }
            for c in range(copies)
        ]


def load_scoring_model(
    checkpoint: str, device: str | torch.device = "cpu"
) -> MultiTaskScoringModel:
    """Load a training checkpoint (``mtal_ray.training.checkpoint``) for scoring; no Ray needed.

    Raises
    ------
    MtalError
        ``CheckpointError`` if the directory is not a complete checkpoint.
    """
    from mtal_ray.training.checkpoint import load_checkpoint

    loaded = load_checkpoint(checkpoint, device)
    return MultiTaskScoringModel(loaded.model, loaded.collator, device)
