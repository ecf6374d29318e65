"""The scorer on the real multi-task model (MiniLM encoder, untrained heads).

Checks, in process (no Ray), that MC dropout really is on in the stochastic passes and off
in the deterministic one, that stacking ``copies`` passes into one forward keeps rows
apart, and that the scorer produces the documented columns for dp, ner and re.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
from torch import nn

from mtal_ray.data.vocab import LabelVocab
from mtal_ray.errors import ScoringError
from mtal_ray.models import ModelConfig, build_model
from mtal_ray.scoring.mc_dropout import MCDropoutScorer
from mtal_ray.scoring.model_adapter import MultiTaskScoringModel, load_scoring_model
from mtal_ray.tasks.registry import build_tasks
from mtal_ray.training.checkpoint import CheckpointInfo, save_checkpoint

pytestmark = pytest.mark.integration

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


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real checkpoint: MiniLM encoder with fresh (seeded) dp/ner/re heads."""
    torch.manual_seed(0)
    model, collator = build_model(build_tasks(["dp", "ner", "re"], LABELS), ModelConfig())
    vocabs = {t: LabelVocab(t, tuple(labels)) for t, labels in LABELS.items()}
    info = CheckpointInfo(tasks=["dp", "ner", "re"], vocabs=vocabs, model=ModelConfig())
    return save_checkpoint(tmp_path_factory.mktemp("ckpt"), model, collator, info)


@pytest.fixture(scope="module")
def scorer_model(checkpoint: Path) -> MultiTaskScoringModel:
    return load_scoring_model(str(checkpoint))


def test_deterministic_pass_has_dropout_off(scorer_model: MultiTaskScoringModel) -> None:
    first, ents = scorer_model.deterministic(SENTENCES, scorer_model.tasks)
    again, ents2 = scorer_model.deterministic(SENTENCES, scorer_model.tasks)
    assert ents["entities"] == ents2["entities"]
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


def test_scorer_columns_for_dp_ner_re(checkpoint: Path) -> None:
    scorer = MCDropoutScorer(str(checkpoint), k=3)
    batch = pa.table(
        {
            "id": [f"p{i}" for i in range(len(SENTENCES))],
            "tokens": SENTENCES,
            "n_tokens": pa.array([len(s) for s in SENTENCES], pa.int32()),
        }
    )
    out = scorer(batch)
    assert sorted(out.column("id").to_pylist()) == sorted(batch.column("id").to_pylist())
    assert out.column_names == [
        "id", "n_tokens", "dp.ec", "dp.da", "ner.ec", "ner.da", "ner.n_entities",
        "re.ec", "re.da", "re.n_entities", "re.n_pairs",
    ]  # fmt: skip
    for col in ("dp.ec", "dp.da", "ner.ec", "ner.da", "re.ec", "re.da"):
        values = out.column(col).to_numpy()
        assert np.all((values >= 0) & (values <= 1)) and not np.isnan(values).any(), col
    n_ent = out.column("re.n_entities").to_numpy()
    assert (out.column("re.n_pairs").to_numpy() == n_ent * (n_ent - 1)).all()  # ordered pairs
    one_word = out.column("id").to_pylist().index("p2")
    assert out.column("dp.ec")[one_word].as_py() == 1.0  # its only head is the root


def test_ec_only_runs_no_stochastic_pass(checkpoint: Path) -> None:
    scorer = MCDropoutScorer(str(checkpoint), k=3, ec_only=True, tasks=["ner"])
    calls = []
    original = scorer.model.stochastic
    scorer.model.stochastic = lambda *a, **kw: calls.append(a) or original(*a, **kw)  # type: ignore[method-assign]
    batch = pa.table({"id": ["a"], "tokens": [SENTENCES[0]], "n_tokens": pa.array([5], pa.int32())})
    out = scorer(batch)
    assert calls == []
    assert out.column_names == ["id", "n_tokens", "ner.ec", "ner.n_entities"]


def test_unknown_task_is_a_scoring_error(checkpoint: Path) -> None:
    with pytest.raises(ScoringError, match="no task sf"):
        MCDropoutScorer(str(checkpoint), tasks=["sf"])
