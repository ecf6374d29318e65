"""Temperature scaling fitted on a dev split through the real model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mtal_ray.confidence import temperature_nll
from mtal_ray.data.synthetic import make_synthetic_corpus
from mtal_ray.data.vocab import build_vocabs
from mtal_ray.models import ModelConfig, build_model, deterministic
from mtal_ray.scoring.calibration import fit_temperatures
from mtal_ray.scoring.model_adapter import MultiTaskScoringModel
from mtal_ray.tasks.registry import build_tasks

pytestmark = pytest.mark.integration


def test_fitted_temperatures_minimise_dev_nll() -> None:
    corpus = make_synthetic_corpus(n_train=40, n_dev=24, n_test=2, seed=0)
    dev = corpus.split("dev")
    torch.manual_seed(0)
    tasks = build_tasks(["sf", "id"], build_vocabs(corpus.split("train"), ["sf", "id"]))
    scorer = MultiTaskScoringModel(*build_model(tasks, ModelConfig()))
    batch = scorer.collator(dev, with_targets=False)
    with deterministic(scorer.model):
        guess = scorer.model.predict_proba(batch)["id"]["probs"].argmax(-1).tolist()
    # relabel dev so that the (untrained, near-uniform) model is right on 2 of 3 rows:
    # its best temperature is then a finite sharpening, T < 1
    labels = list(scorer.model.tasks["id"].labels)
    new = [labels[g] if i % 3 else labels[(g + 1) % len(labels)] for i, g in enumerate(guess)]
    dev = dev.set_column(dev.schema.get_field_index("id.label"), "id.label", [new])
    temps = fit_temperatures(scorer, dev, batch_size=8)
    assert set(temps) == {"sf", "id"} and all(t > 0 for t in temps.values())
    assert 0.05 < temps["id"] < 1.0
    batch = scorer.collator(dev, with_targets=True)
    with deterministic(scorer.model):
        probs = scorer.model.predict_proba(batch)
    target = batch.targets["id"]
    p, y = probs["id"]["probs"].numpy(), target["label"].numpy()
    keep = target["mask"].numpy()
    best = temperature_nll(p[keep], y[keep], temps["id"])
    for other in (temps["id"] * 0.95, temps["id"] * 1.05, 1.0):
        assert best <= temperature_nll(p[keep], y[keep], other) + 1e-9
    assert np.isfinite(best)
