"""The hierarchical and SC-LSTM schemes end to end: Ray Train, the scorer, the AL loop, a sweep.

* ``hierarchical`` (NER at layer 1, RE at the top) trains on 2 DDP workers through
  ``train_model`` and its checkpoint scores with MC dropout;
* ``sclstm`` over plain embeddings trains with per-step ``proportional`` task sampling on
  disjointly annotated rows (2 DDP workers) and scores;
* a tiny ``mtal-ray sweep`` whose grid is ``model.sharing: [hierarchical, sclstm]`` runs
  one 2-iteration AL experiment (train, score, select MT-AVG, annotate, train) per scheme,
  training in the trial's own actor (``training.num_workers: 0``).

A tiny random BERT keeps the compute to seconds; the code paths are the real ones.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from models_sample_rows import multitask_table, sf_id_table

from mtal_ray.models import ModelConfig
from mtal_ray.scoring.model_adapter import load_scoring_model
from mtal_ray.training import TrainingConfig, train_model

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]


def small_config(**overrides: object) -> TrainingConfig:
    base = {"num_workers": 2, "batch_size": 8, "eval_every": 2, "max_steps": 4, "lr": 1e-3}
    return TrainingConfig(**{**base, **overrides})


def repeated(table: pa.Table, times: int) -> pa.Table:
    """``table`` repeated with unique ids."""
    parts = []
    for k in range(times):
        ids = pa.array([f"{i}-{k}" for i in table.column("id").to_pylist()])
        parts.append(table.set_column(0, "id", ids))
    return pa.concat_tables(parts)


def _scores(checkpoint: Path, sentences: list[list[str]], tasks: tuple[str, ...]) -> None:
    scorer = load_scoring_model(str(checkpoint))
    outputs, context = scorer.deterministic(sentences, tasks)
    passes = scorer.stochastic(sentences, tasks, 2, context)
    assert set(outputs) == set(tasks) and len(passes) == 2
    token_task = tasks[0]
    assert outputs[token_task].probs.shape[0] == len(sentences)
    assert np.isfinite(outputs[token_task].probs).all()
    assert not np.allclose(passes[0][token_task].probs, passes[1][token_task].probs)


def test_hierarchical_ner_re_trains_on_ray_and_scores(ray_session, encoder: str, tmp_path: Path):
    table = repeated(multitask_table().select(["id", "tokens", "ner.tags", "re.relations"]), 5)
    model = ModelConfig(encoder=encoder, sharing="hierarchical", hierarchy={"ner": 1})
    result = train_model(
        table.slice(0, 16), table.slice(16), ["ner", "re"], model, small_config(), tmp_path
    )
    assert result.steps == 4 and set(result.dev_scores) == {"ner", "re"}
    assert 0.0 <= result.dev_gmean <= 1.0
    _scores(result.checkpoint_dir, [["John", "lives", "in", "Paris"], ["Acme"]], ("ner", "re"))


def test_sclstm_with_task_sampling_on_disjoint_annotation(
    ray_session, encoder: str, tmp_path: Path
):
    table = sf_id_table(32)
    half = [i % 2 == 0 for i in range(32)]
    slots = [
        t if keep else None for t, keep in zip(table["sf.tags"].to_pylist(), half, strict=True)
    ]
    intents = [
        None if keep else x for x, keep in zip(table["id.label"].to_pylist(), half, strict=True)
    ]
    train = table.slice(0, 24)
    train = train.set_column(2, "sf.tags", pa.array(slots[:24], pa.list_(pa.string())))
    train = train.set_column(3, "id.label", pa.array(intents[:24], pa.string()))
    model = ModelConfig(
        encoder=encoder,
        sharing="sclstm",
        sclstm={"hidden_size": 16, "layers": 2, "input": "embeddings"},
    )
    training = small_config(task_sampling="proportional", head_lr=3e-3)
    result = train_model(train, table.slice(24), ["sf", "id"], model, training, tmp_path)
    assert result.steps == 4 and set(result.dev_scores) == {"sf", "id"}
    _scores(result.checkpoint_dir, [["show", "flights", "to", "boston"], ["hi"]], ("sf", "id"))


TINY_SWEEP = [
    "data.synthetic.n_train=40",
    "data.synthetic.n_dev=10",
    "data.synthetic.n_test=10",
    "data.initial_count=8",
    "data.dev_multiple=1.0",
    "training.max_steps=2",
    "training.eval_every=2",
    "training.batch_size=8",
    "scoring.k=2",
    "al.iterations=2",
    "selection.method=mt-avg",
    "model.sclstm.hidden_size=8",
    "training.num_workers=0",  # in the trial's actor: the DDP workers are checked above
    "sweep.grid=[{model.sharing: [hierarchical, sclstm], seed: [0]}]",
]


def test_al_loop_and_sweep_run_both_schemes(encoder: str, tmp_path: Path, ray_address: str):
    sweep_dir = tmp_path / "sweep"
    # on the session's shared Ray (mtal_ray.ray_session.ensure_ray joins RAY_ADDRESS)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", RAY_ADDRESS=ray_address)
    command = [
        sys.executable, "-m", "mtal_ray.cli", "sweep",
        "--config", str(REPO / "configs" / "sweep_quickstart.yaml"),
        "--sweep-dir", str(sweep_dir), f"model.encoder={encoder}", *TINY_SWEEP,
    ]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = list(csv.DictReader(io.StringIO((sweep_dir / "report.csv").read_text())))
    assert len(rows) == 2, rows
    labels = sorted(r["method"] for r in rows)
    assert labels == ["mt-avg (sharing=hierarchical)", "mt-avg (sharing=sclstm)"], rows
    for row in rows:
        for task in ("sf", "id"):
            assert 0.0 <= float(row[f"{task}.mean"]) <= 1.0
    assert "Trials: 2 finished, 0 failed" in (sweep_dir / "report.md").read_text()
