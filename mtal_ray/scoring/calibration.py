"""Temperature scaling fitted on the development set (optional post-hoc calibration).

:func:`fit_temperatures` runs the deterministic pass over the dev split, collects each
task's probabilities at the gold-annotated positions, and fits one temperature per task
with :func:`mtal_ray.confidence.fit_temperature`. Put the result in
``scoring.temperatures``; the scorer then rescales probabilities before EC (argmax, DA
and predictions are unchanged). ``re`` is not calibrated: its candidate pairs come from
predicted entities, which have no gold relation label when the entities are wrong.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import torch

from mtal_ray.confidence import fit_temperature
from mtal_ray.errors import ScoringError
from mtal_ray.scoring.buckets import length_buckets
from mtal_ray.scoring.model_adapter import MultiTaskScoringModel
from mtal_ray.taskspec import task_spec

__all__ = ["calibrate_checkpoint", "describe_temperatures", "fit_temperatures"]

#: Per task: (key of the gold index tensor, key of its mask) in ``Task.targets``.
_GOLD = {"token": ("tags", "mask"), "dp": ("heads", "head_mask"), "id": ("label", "mask")}


def _gold_keys(name: str, probs: dict) -> tuple[str, str, str] | None:
    if "arc_probs" in probs:
        return ("arc_probs", *_GOLD["dp"])
    if "pair_probs" in probs:
        return None
    key = "token" if probs["probs"].dim() == 3 else "id"
    return ("probs", *_GOLD[key])


def fit_temperatures(
    scorer: MultiTaskScoringModel,
    dev: pa.Table,
    tasks: Sequence[str] | None = None,
    batch_size: int = 64,
) -> dict[str, float]:
    """One temperature per task, minimising the dev NLL of the gold labels.

    Parameters
    ----------
    scorer : MultiTaskScoringModel
        The loaded model.
    dev : pyarrow.Table
        Development rows with gold columns.
    tasks : sequence of str, optional
        Tasks to calibrate (default: all except relation tasks, ``re``).
    batch_size : int
        Sentences per forward pass.

    Returns
    -------
    dict
        ``{task: T}`` for every task with annotated dev positions.
    """
    from mtal_ray.models.inference import deterministic

    # relation scores are over entity pairs, not labels of positions: no temperature
    wanted = [t for t in (tasks or scorer.tasks) if task_spec(t).kind != "relation"]
    rows: dict[str, list[np.ndarray]] = {t: [] for t in wanted}
    gold: dict[str, list[np.ndarray]] = {t: [] for t in wanted}
    lengths = [len(t or []) for t in dev.column("tokens").to_pylist()]
    for index in length_buckets(lengths, batch_size):
        batch = scorer.collator(dev.take(pa.array(index)), with_targets=True).to(scorer.device)
        with deterministic(scorer.model), torch.inference_mode():
            probs = scorer.model.predict_proba(batch)
        for name in wanted:
            keys = _gold_keys(name, probs[name])
            if keys is None:
                continue
            prob_key, gold_key, mask_key = keys
            target = batch.targets[name]
            mask = target[mask_key] & target["annotated"].view(
                -1, *[1] * (target[mask_key].dim() - 1)
            )
            p = probs[name][prob_key].float().cpu().numpy()
            keep = mask.cpu().numpy()
            rows[name].append(p[keep])
            gold[name].append(target[gold_key].cpu().numpy()[keep])
    out: dict[str, float] = {}
    for name in wanted:
        if not rows[name] or sum(len(r) for r in rows[name]) == 0:
            continue
        width = max(r.shape[-1] for r in rows[name])  # dp: arcs are as wide as the sentence
        stacked = np.concatenate(
            [np.pad(r, ((0, 0), (0, width - r.shape[-1]))) for r in rows[name]]
        )
        labels = np.concatenate(gold[name])
        ok = stacked[np.arange(len(labels)), labels] > 0
        if not ok.any():
            raise ScoringError(f"{name}: no dev position where the gold label has probability > 0")
        out[name] = fit_temperature(stacked[ok], labels[ok])
    return out


def calibrate_checkpoint(
    checkpoint: str, dev: pa.Table, tasks: Sequence[str] | None = None
) -> dict[str, float]:
    """:func:`fit_temperatures` for a training checkpoint (loaded here, outside Ray)."""
    from mtal_ray.scoring.model_adapter import load_scoring_model

    return fit_temperatures(load_scoring_model(checkpoint), dev, tasks)


def describe_temperatures(temperatures: dict[str, float]) -> str:
    """``T[sf] = 1.234, T[id] = 0.870`` for progress lines."""
    return ", ".join(f"T[{t}] = {v:.3f}" for t, v in temperatures.items())
