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

**Partial MC dropout** (``mc_layers=N``, :meth:`~MultiTaskScoringModel.partial`): the
deterministic pass also keeps the input of the encoder's top N layers (the output of the
bottom layers without dropout); the stochastic passes start from it and run only the top N
layers and the heads with dropout on. With N of L layers a pass costs about N/L of a full
one. For BERT-style encoders under the ``smt``/``st`` schemes (any N) and ``cmt`` (N = its
per-task top layers, run with their gates as one block); the first batch checks that the
split reproduces the unsplit model.
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
        self.mc_layers: int | None = None  # None: every layer is stochastic (full MC)
        self._bottom: torch.Tensor | None = None
        self._checked = False

    def partial(self, mc_layers: int) -> None:
        """Run only the encoder's top ``mc_layers`` layers (and the heads) stochastically.

        Raises
        ------
        ScoringError
            The model's sharing scheme or encoder has no single layer stack to split, or
            ``mc_layers`` exceeds it.
        """
        from mtal_ray.errors import ConfigError, ScoringError
        from mtal_ray.models.sharing import (
            GatedTopLayers,
            SharedEncoder,
            encoder_layers,
            layer_mask,
            run_layers,
        )

        sharing = self.model.sharing
        if isinstance(sharing, SharedEncoder):
            encoder = sharing.encoder
        elif isinstance(sharing, GatedTopLayers):
            encoder = sharing.bottom
            n_top = len(sharing.shared_top)
            if mc_layers != n_top:
                raise ScoringError(
                    f"scoring.mc_layers: a cmt model runs its per-task top layers "
                    f"stochastically as one block: mc_layers must be {n_top} "
                    f"(model.cmt_shared_layers splits the encoder) or all"
                )
        else:
            raise ScoringError(
                f"scoring.mc_layers: partial MC dropout needs the smt, st or cmt sharing "
                f"scheme (this model uses {self.model.config.sharing}); use mc_layers: all"
            )
        try:
            layers = encoder_layers(encoder)
        except ConfigError:
            raise ScoringError(
                "scoring.mc_layers: partial MC dropout needs a BERT-style encoder "
                f"(encoder.layer); {type(encoder).__name__} has none"
            ) from None
        if isinstance(sharing, GatedTopLayers):
            split = len(layers)

            def top(bottom: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, Any]:
                return sharing.top(bottom, attention_mask)

        else:
            if not 1 <= mc_layers <= len(layers):
                raise ScoringError(
                    f"scoring.mc_layers: {mc_layers} must be between 1 and the encoder's "
                    f"{len(layers)} layers (or all)"
                )
            split = len(layers) - mc_layers
            stack = list(layers[split:])

            def top(bottom: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, Any]:
                mask = layer_mask(encoder.config, bottom, attention_mask)
                return dict.fromkeys(sharing.tasks, run_layers(stack, bottom, mask))

        source = layers[split - 1] if split > 0 else encoder.embeddings

        def keep(_module: Any, _inputs: Any, output: Any) -> None:
            self._bottom = output[0] if isinstance(output, tuple) else output

        source.register_forward_hook(keep)
        self.mc_layers = mc_layers
        self._top_states = top

    def _check_split(self, batch: Any, bottom: torch.Tensor) -> None:
        """Once: the top layers over the kept output reproduce the encoder's output."""
        from mtal_ray.errors import ScoringError
        from mtal_ray.models.inference import deterministic

        with deterministic(self.model):
            full = self.model.sharing(batch.input_ids, batch.attention_mask)
            split = self._top_states(bottom, batch.attention_mask)
        mask = batch.attention_mask.bool()
        if not all(
            torch.allclose(full[t][mask], split[t][mask], atol=1e-4, rtol=1e-3) for t in full
        ):
            raise ScoringError(
                f"scoring.mc_layers: the model ({self.model.config.sharing} sharing) "
                "does not end with its last layer's output, so it cannot be split for "
                "partial MC dropout; use mc_layers: all"
            )
        self._checked = True

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
        self._bottom = None
        with deterministic(self.model):
            probs = self.model.predict_proba(batch)
        entities = probs["re"]["entities"] if "re" in probs else None
        context = {"batch": batch, "entities": entities}
        if self.mc_layers is not None:
            if self._bottom is None:  # pragma: no cover - the hook runs in every forward
                raise RuntimeError("partial MC dropout: the bottom layers' output was not kept")
            if not self._checked:
                self._check_split(batch, self._bottom)
            context["bottom"] = self._bottom
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
        bottom = context.get("bottom")
        with mc_dropout(self.model):
            states = None
            if bottom is not None:  # partial MC: the top layers only, from the kept output
                states = self._top_states(bottom.repeat(copies, 1, 1), batch.attention_mask)
            probs = self.model.predict_proba(batch, entities=entities, states=states)
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
    checkpoint: str, device: str | torch.device = "cpu", mc_layers: int | None = None
) -> MultiTaskScoringModel:
    """Load a training checkpoint (``mtal_ray.training.checkpoint``) for scoring; no Ray needed.

    Raises
    ------
    MtalError
        ``CheckpointError`` if the directory is not a complete checkpoint.
    """
    from mtal_ray.training.checkpoint import load_checkpoint

    loaded = load_checkpoint(checkpoint, device)
    model = MultiTaskScoringModel(loaded.model, loaded.collator, device)
    if mc_layers is not None:
        model.partial(mc_layers)
    return model
