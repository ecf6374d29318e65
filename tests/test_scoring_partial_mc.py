"""Partial MC dropout (issue 17, item 2): ``scoring.mc_layers: N`` runs the encoder's bottom
layers once per sentence without dropout and only its top N layers and the heads k times.

On the real MiniLM encoder (6 layers) with seeded dp/ner/re heads, in process:
* with every layer stochastic and the embeddings' dropout off, partial MC draws exactly the
  masks of full MC, so every column is identical (the split is exact, not an approximation);
* with N = 2 the bottom four layers run only in the deterministic pass (counted by hooks),
  EC is unchanged and DA stays a valid agreement;
* what cannot be split is refused in one line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
from test_scoring_model import LABELS, SENTENCES

from mtal_ray.config import load_config
from mtal_ray.data.vocab import LabelVocab
from mtal_ray.errors import ConfigError, ScoringError
from mtal_ray.models import ModelConfig, build_model
from mtal_ray.scoring.config import ScoringConfig
from mtal_ray.scoring.mc_dropout import MCDropoutScorer
from mtal_ray.scoring.model_adapter import MultiTaskScoringModel, load_scoring_model
from mtal_ray.tasks.registry import build_tasks
from mtal_ray.training.checkpoint import CheckpointInfo, save_checkpoint

pytestmark = pytest.mark.integration

TASKS = ["dp", "ner", "re"]
BATCH = pa.table(
    {
        "id": [f"p{i}" for i in range(len(SENTENCES))],
        "tokens": SENTENCES,
        "n_tokens": pa.array([len(s) for s in SENTENCES], pa.int32()),
    }
)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model, collator = build_model(build_tasks(TASKS, LABELS), ModelConfig())
    vocabs = {t: LabelVocab(t, tuple(labels)) for t, labels in LABELS.items()}
    info = CheckpointInfo(tasks=TASKS, vocabs=vocabs, model=ModelConfig())
    return save_checkpoint(tmp_path_factory.mktemp("ckpt"), model, collator, info)


def _without_embedding_dropout(checkpoint: str) -> MultiTaskScoringModel:
    model = load_scoring_model(checkpoint)
    model.model.sharing.encoder.embeddings.dropout.p = 0.0
    return model


def _columns(table: pa.Table) -> dict[str, np.ndarray]:
    order = np.argsort(table.column("id").to_pylist())
    return {
        name: np.asarray(table.column(name).to_numpy(zero_copy_only=False))[order]
        for name in table.column_names
        if name != "id"
    }


def test_every_layer_stochastic_is_exactly_full_mc(checkpoint: Path) -> None:
    full = MCDropoutScorer(str(checkpoint), k=4, loader=_without_embedding_dropout)
    partial = MCDropoutScorer(str(checkpoint), k=4, mc_layers=6, loader=_without_embedding_dropout)
    a, b = _columns(full(BATCH)), _columns(partial(BATCH))
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(b[name], a[name], atol=1e-6, err_msg=name)
    # and the DA is not trivially 1: the passes did disagree somewhere
    assert min(a["ner.da"].min(), a["dp.da"].min()) < 1.0


def _count_layer_calls(model: MultiTaskScoringModel, encoder: object = None) -> list[int]:
    stack = (encoder or model.model.sharing.encoder).encoder.layer  # type: ignore[attr-defined]
    calls = [0] * len(stack)
    for i, layer in enumerate(stack):
        layer.register_forward_hook(lambda *_args, i=i: calls.__setitem__(i, calls[i] + 1))
    return calls


def test_two_top_layers_run_the_stochastic_passes_alone(checkpoint: Path) -> None:
    full = MCDropoutScorer(str(checkpoint), k=4, max_tokens=10_000)
    partial = MCDropoutScorer(str(checkpoint), k=4, mc_layers=2, max_tokens=10_000)
    full_calls, partial_calls = _count_layer_calls(full.model), _count_layer_calls(partial.model)
    a, b = _columns(full(BATCH)), _columns(partial(BATCH))
    # one length bucket: full MC runs every layer once deterministically + once for the
    # four stacked passes; partial runs the bottom four layers once (plus the first batch's
    # check of the split), the top two also for the passes
    assert full_calls == [2] * 6
    assert partial_calls == [2, 2, 2, 2, 4, 4]
    for name in ("dp.ec", "ner.ec", "re.ec", "ner.n_entities", "re.n_pairs"):
        np.testing.assert_allclose(b[name], a[name], atol=1e-6, err_msg=name)
    for name in ("dp.da", "ner.da", "re.da"):
        assert ((b[name] >= 0) & (b[name] <= 1)).all(), name
    # a second batch: no second check of the split
    partial(BATCH)
    assert partial_calls == [3, 3, 3, 3, 6, 6]


def test_what_cannot_be_split_is_refused(checkpoint: Path) -> None:
    with pytest.raises(ScoringError, match="between 1 and the encoder's 6 layers"):
        MCDropoutScorer(str(checkpoint), k=4, mc_layers=7)
    torch.manual_seed(0)
    model, collator = build_model(
        build_tasks(["ner", "re"], {t: LABELS[t] for t in ("ner", "re")}),
        ModelConfig(sharing="hierarchical"),
    )
    with pytest.raises(ScoringError, match=r"needs the smt, st or cmt sharing scheme.*hierarch"):
        MultiTaskScoringModel(model, collator).partial(2)
    # EC only runs no stochastic pass: nothing to split, nothing refused
    MCDropoutScorer(str(checkpoint), ec_only=True, mc_layers=7)


def test_config_key() -> None:
    assert ScoringConfig().partial_layers() is None
    assert ScoringConfig(mc_layers=2).partial_layers() == 2
    assert load_config(None, ["scoring.mc_layers=2"]).scoring.partial_layers() == 2
    for bad in ("0", "some"):
        with pytest.raises(ConfigError, match=r"scoring\.mc_layers"):
            load_config(None, [f"scoring.mc_layers={bad}"])


def test_cmt_runs_its_gated_top_block_stochastically(tmp_path: Path) -> None:
    """cmt (4 shared layers, 2 per-task top layers with gates): mc_layers must be 2."""
    torch.manual_seed(0)
    labels = {"ner": LABELS["ner"]}
    model, collator = build_model(build_tasks(["ner"], labels), ModelConfig(sharing="cmt"))
    vocabs = {"ner": LabelVocab("ner", tuple(LABELS["ner"]))}
    info = CheckpointInfo(tasks=["ner"], vocabs=vocabs, model=ModelConfig(sharing="cmt"))
    ckpt = str(save_checkpoint(tmp_path / "cmt", model, collator, info))
    with pytest.raises(ScoringError, match="mc_layers must be 2"):
        MCDropoutScorer(ckpt, k=4, mc_layers=3)
    full = MCDropoutScorer(ckpt, k=4)
    partial = MCDropoutScorer(ckpt, k=4, mc_layers=2)
    bottom_calls = _count_layer_calls(partial.model, partial.model.model.sharing.bottom)
    a, b = _columns(full(BATCH)), _columns(partial(BATCH))
    np.testing.assert_allclose(b["ner.ec"], a["ner.ec"], atol=1e-6)
    assert ((b["ner.da"] >= 0) & (b["ner.da"] <= 1)).all()
    assert bottom_calls == [2, 2, 2, 2]  # the deterministic pass and the check only
