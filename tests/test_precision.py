"""bfloat16 and GPU plumbing (issue 17, item 7), checked on the CPU.

* ``scoring.precision: bf16`` runs the scoring passes under bfloat16 autocast: on the real
  MiniLM encoder with dp/ner/re heads the confidences move (autocast is on) but stay
  close to float32's, and every probability-derived column stays float32;
* ``scoring.gpus_per_actor`` > 0 puts the model on the actor's GPU: without CUDA the actor
  stops with one line (no silent CPU run);
* ``training.precision: bf16``: DDP forward passes under autocast (float32 master weights),
  DeepSpeed's engine in its bf16 mode; fp32 leaves both alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_scoring_partial_mc import BATCH, _columns
from test_scoring_partial_mc import checkpoint as checkpoint

from mtal_ray.config import load_config
from mtal_ray.errors import ConfigError, ScoringError
from mtal_ray.models import ModelConfig, build_model
from mtal_ray.scoring.config import ScoringConfig
from mtal_ray.scoring.mc_dropout import MCDropoutScorer
from mtal_ray.tasks.registry import build_tasks
from mtal_ray.training.config import TrainingConfig
from mtal_ray.training.runners import DdpRunner, DeepSpeedRunner

pytestmark = pytest.mark.integration


def test_bf16_scoring_runs_under_autocast_and_stays_close_to_fp32(checkpoint: Path) -> None:
    fp32 = _columns(MCDropoutScorer(str(checkpoint), k=3, seed=1)(BATCH))
    bf16_scorer = MCDropoutScorer(str(checkpoint), k=3, seed=1, precision="bf16")
    scored = bf16_scorer(BATCH)
    bf16 = _columns(scored)
    for column in ("dp.ec", "ner.ec", "re.ec", "dp.da", "ner.da"):
        assert scored.schema.field(column).type in ("float", "double"), column
        assert np.isfinite(bf16[column]).all()
        np.testing.assert_allclose(bf16[column], fp32[column], atol=0.05)
    moved = max(float(np.abs(bf16[c] - fp32[c]).max()) for c in ("dp.ec", "ner.ec"))
    assert moved > 0, "bf16 scored exactly like fp32: autocast was not on"


def test_a_gpu_scoring_actor_without_cuda_stops_with_one_line(checkpoint: Path) -> None:
    assert ScoringConfig(gpus_per_actor=1).device() == "cuda"
    assert ScoringConfig().device() == "cpu"
    if torch.cuda.is_available():  # pragma: no cover - GPU machines
        pytest.skip("this machine has CUDA")
    with pytest.raises(
        ScoringError, match=r"gpus_per_actor > 0 but this scoring actor sees no CUDA"
    ):
        MCDropoutScorer(str(checkpoint), k=2, device="cuda")


def test_precision_keys_are_validated() -> None:
    config = load_config(None, ["training.precision=bf16", "scoring.precision=bf16"])
    assert config.training.precision == "bf16" and config.scoring.precision == "bf16"
    with pytest.raises(ConfigError, match=r"training\.precision"):
        load_config(None, ["training.precision=fp16"])
    with pytest.raises(ConfigError, match=r"scoring\.precision"):
        load_config(None, ["scoring.precision=half"])


def test_ddp_bf16_autocasts_the_forward_and_keeps_fp32_weights(encoder: str) -> None:
    model, _ = build_model(build_tasks(["id"], {"id": ["a", "b"]}), ModelConfig(encoder=encoder))
    linear = torch.nn.Linear(4, 3)
    device = torch.device("cpu")
    for precision, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        runner = DdpRunner()
        runner.setup(model, TrainingConfig(precision=precision), world=1)
        with runner.autocast(device):
            assert linear(torch.ones(2, 4)).dtype == dtype
        assert all(p.dtype == torch.float32 for p in model.parameters())


def test_deepspeed_bf16_is_the_engines_mode() -> None:
    on = DeepSpeedRunner.engine_config(TrainingConfig(strategy="deepspeed", precision="bf16"), 2)
    off = DeepSpeedRunner.engine_config(TrainingConfig(strategy="deepspeed"), 2)
    assert on["bf16"] == {"enabled": True} and off["bf16"] == {"enabled": False}
    assert on["train_batch_size"] == 2 * on["train_micro_batch_size_per_gpu"]
    runner = DeepSpeedRunner()
    with runner.autocast(torch.device("cpu")):  # the engine casts itself: no autocast
        assert torch.nn.Linear(4, 3)(torch.ones(2, 4)).dtype == torch.float32
