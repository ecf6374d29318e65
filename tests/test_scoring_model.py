"""The scorer on the real multi-task model (MiniLM encoder, untrained heads).

Checks that MC dropout really is on in the stochastic passes and off in the deterministic
one, that stacking ``copies`` passes into one forward keeps rows apart, and that a small
pool scored by two Ray Data actors comes back complete.
"""

from __future__ import annotations

import sys

import numpy as np
import pyarrow as pa
import pytest
import ray.cloudpickle
import torch
from torch import nn

from mtal_ray.models import ModelConfig, build_model
from mtal_ray.scoring.config import ScoringConfig
from mtal_ray.scoring.model_adapter import MultiTaskScoringModel
from mtal_ray.scoring.pool import score_pool

pytestmark = pytest.mark.integration
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

LABELS = {
    "dp": ["nsubj", "obj", "root", "punct"],
    "ner": ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"],
    "re": ["none", "lives_in"],
}
SENTENCES = [
    ["John", "lives", "in", "Paris", "."],
    ["Mary", "works", "at", "Google", "in", "London", "today"],
    ["Hi"],
    ["The", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog", "near", "Berlin"],
]


def real_model(checkpoint: str = "") -> MultiTaskScoringModel:
    from mtal_ray.tasks.registry import build_tasks

    torch.manual_seed(0)  # identical heads in every actor
    model, collator = build_model(build_tasks(["dp", "ner", "re"], LABELS), ModelConfig())
    return MultiTaskScoringModel(model, collator)


@pytest.fixture(scope="module")
def scorer_model() -> MultiTaskScoringModel:
    return real_model()


def test_deterministic_pass_has_dropout_off(scorer_model: MultiTaskScoringModel) -> None:
    first, ents = scorer_model.deterministic(SENTENCES, scorer_model.tasks)
    again, ents2 = scorer_model.deterministic(SENTENCES, scorer_model.tasks)
    assert ents == ents2
    for task in scorer_model.tasks:
        np.testing.assert_array_equal(first[task].probs, again[task].probs)
    # padding does not leak: a sentence scored alone gets the same probabilities
    alone, _ = scorer_model.deterministic(SENTENCES[:1], ("ner",))
    n = len(SENTENCES[0])
    np.testing.assert_allclose(alone["ner"].probs[0, :n], first["ner"].probs[0, :n], atol=1e-5)


def test_stochastic_passes_differ(scorer_model: MultiTaskScoringModel) -> None:
    _, ents = scorer_model.deterministic(SENTENCES, scorer_model.tasks)
    passes = scorer_model.stochastic(SENTENCES, scorer_model.tasks, 3, ents)
    assert len(passes) == 3
    for task in ("dp", "ner"):
        assert not np.allclose(passes[0][task].probs, passes[1][task].probs)
        assert not np.allclose(passes[1][task].probs, passes[2][task].probs)
    # the re candidates are the deterministic pass's entities in every pass
    assert all(p["re"].probs.shape == passes[0]["re"].probs.shape for p in passes)


def test_stacked_copies_keep_rows_apart(scorer_model: MultiTaskScoringModel) -> None:
    det, ents = scorer_model.deterministic(SENTENCES, scorer_model.tasks)
    drops = [m for m in scorer_model.model.modules() if isinstance(m, nn.Dropout)]
    assert drops, "the model has no dropout modules"
    saved = [m.p for m in drops]
    try:
        for m in drops:
            m.p = 0.0  # dropout "on" but dropping nothing: every copy must equal det
        passes = scorer_model.stochastic(SENTENCES, scorer_model.tasks, 3, ents)
    finally:
        for m, p in zip(drops, saved, strict=True):
            m.p = p
    for copy in passes:
        for task in scorer_model.tasks:
            np.testing.assert_allclose(copy[task].probs, det[task].probs, atol=1e-5)


def test_pool_with_two_actors_on_the_real_model(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    words = [w for s in SENTENCES for w in s]
    tokens = [list(rng.choice(words, size=int(rng.integers(1, 16)))) for _ in range(24)]
    pool = pa.table({"id": [f"p{i}" for i in range(24)], "tokens": tokens})
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        cfg = ScoringConfig(k=3, concurrency=2, batch_size=5, cpus_per_actor=0.5)
        out = score_pool(pool, tmp_path, cfg, loader=real_model)
    finally:
        ray.shutdown()
    assert out.column("id").to_pylist() == pool.column("id").to_pylist()
    for col in ("dp.ec", "dp.da", "ner.ec", "ner.da", "re.ec", "re.da"):
        values = out.column(col).to_numpy()
        assert np.all((values >= 0) & (values <= 1)) and not np.isnan(values).any(), col
    assert out.column("ner.da").to_numpy().min() < 1.0
    assert (
        out.column("re.n_pairs").to_numpy() <= out.column("re.n_entities").to_numpy() ** 2
    ).all()
