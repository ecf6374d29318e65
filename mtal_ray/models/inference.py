"""Inference with a trained model: deterministic or MC-dropout probabilities, decoding, scores.

* :func:`deterministic` — eval mode (dropout off) and no gradients.
* :func:`mc_dropout` — every ``nn.Dropout`` module active, everything else in eval mode,
  no gradients; each ``predict_proba`` call is then one stochastic pass (Gal &
  Ghahramani, 2016). Both restore the previous modes on exit.
* :func:`predict` — decoded predictions of a table in the data contract's column form
  (``id`` plus every task's columns), ready to write back or pre-fill for annotators.
* :func:`evaluate` — per-task scores (``main`` in [0, 1]) and their geometric mean.

Rows are batched in order of length (less padding) and returned in input order.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import pyarrow as pa
import torch
from torch import nn

from mtal_ray.data.schema import make_table
from mtal_ray.models.collate import Batch, Collator
from mtal_ray.models.multitask import MultiTaskModel
from mtal_ray.tasks.base import Prediction


@contextmanager
def deterministic(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and ``torch.no_grad`` inside the block."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


@contextmanager
def mc_dropout(model: nn.Module) -> Iterator[nn.Module]:
    """Dropout active (MC dropout), all else in eval mode, ``torch.no_grad`` inside.

    Every place that drops out during training drops out here: ``nn.Dropout`` modules and
    the modules that own one and consult their own ``training`` flag for functional dropout
    (Hugging Face attention applies attention-probability dropout with
    ``dropout=self.dropout.p if self.training``).
    """
    modes = {m: m.training for m in model.modules()}
    model.eval()
    for module in model.modules():
        if isinstance(module, nn.Dropout) or any(
            isinstance(child, nn.Dropout) for child in module.children()
        ):
            module.training = True  # this module only (train() would recurse)
    try:
        with torch.no_grad():
            yield model
    finally:
        for module, mode in modes.items():
            module.training = mode


def length_batches(table: pa.Table, batch_size: int) -> Iterator[list[int]]:
    """Row indices of ``table`` in batches of similar length (longest first)."""
    lengths = [len(t or []) for t in table.column("tokens").to_pylist()]
    order = sorted(range(table.num_rows), key=lambda i: -lengths[i])
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def iter_batches(
    collator: Collator, table: pa.Table, batch_size: int, with_targets: bool = False
) -> Iterator[tuple[list[int], Batch]]:
    """``(row indices, batch)`` over ``table`` in length order."""
    for rows in length_batches(table, batch_size):
        yield rows, collator(table.take(rows), with_targets=with_targets)


def predict_rows(
    model: MultiTaskModel,
    collator: Collator,
    table: pa.Table,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
) -> list[Prediction]:
    """Per row of ``table`` (input order), the decoded columns of every task."""
    predictions: list[Prediction | None] = [None] * table.num_rows
    with deterministic(model):
        for rows, batch in iter_batches(collator, table, batch_size):
            probs = model.predict_proba(batch.to(device))
            decoded: list[Prediction] = [{} for _ in rows]
            for name in model.order:
                for row_pred, cols in zip(
                    decoded, model.tasks[name].decode(probs[name], batch.n_words), strict=True
                ):
                    row_pred.update(cols)
            for row, pred in zip(rows, decoded, strict=True):
                predictions[row] = pred
    return predictions  # type: ignore[return-value]


def predict(
    model: MultiTaskModel,
    collator: Collator,
    table: pa.Table,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
) -> pa.Table:
    """Predictions as a contract table: ``id``, ``tokens`` and every task's columns."""
    rows = predict_rows(model, collator, table, batch_size, device)
    columns: dict[str, list[Any]] = {
        "id": table.column("id").to_pylist(),
        "tokens": table.column("tokens").to_pylist(),
    }
    for name in model.order:
        for column in model.tasks[name].columns:
            columns[column] = [row[column] for row in rows]
    return make_table(columns)


def geometric_mean(scores: Sequence[float]) -> float:
    """Geometric mean of scores in [0, 1] (0 if any score is 0; 0 for none)."""
    if not scores or min(scores) <= 0:
        return 0.0
    return math.exp(sum(math.log(s) for s in scores) / len(scores))


def selection_score(scores: Sequence[float], floor: float = 1e-3) -> float:
    """The checkpoint-selection criterion: the geometric mean with each score floored.

    ``exp(mean(log(max(s, floor))))``. Equal to :func:`geometric_mean` while every task
    scores at least ``floor``; when one task scores 0 (relation extraction early on) the
    plain geometric mean is 0 at every evaluation and cannot rank them, while this one
    still ranks by the other tasks. ``floor`` 0 is the plain geometric mean.

    >>> round(selection_score([0.4, 0.0]), 4), round(selection_score([0.2, 0.0]), 4)
    (0.02, 0.0141)
    """
    if not scores:
        return 0.0
    floored = [max(float(s), floor) for s in scores]
    if min(floored) <= 0:
        return 0.0
    return math.exp(sum(math.log(s) for s in floored) / len(floored))


def score_predictions(
    model: MultiTaskModel, predicted: Sequence[Prediction], gold: pa.Table
) -> dict[str, dict[str, float]]:
    """Per-task metric dicts of ``predicted`` rows against the ``gold`` table."""
    return {name: task.evaluate(predicted, gold) for name, task in model.tasks.items()}


def evaluate(
    model: MultiTaskModel,
    collator: Collator,
    table: pa.Table,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
) -> tuple[dict[str, dict[str, float]], float]:
    """Per-task scores on ``table`` and the geometric mean of their ``main`` values."""
    scores = score_predictions(
        model, predict_rows(model, collator, table, batch_size, device), table
    )
    return scores, geometric_mean([s["main"] for s in scores.values()])


def main_scores(scores: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """``{task: main score}``."""
    return {task: float(s["main"]) for task, s in scores.items()}
