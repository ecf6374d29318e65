"""Nothing unsafe is loaded: crafted pickles as training state and as model weights are
refused in one line, and the code they carry never runs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from mtal_ray.data.vocab import LabelVocab
from mtal_ray.models.config import ModelConfig
from mtal_ray.training.checkpoint import CheckpointInfo, load_checkpoint, save_checkpoint
from mtal_ray.training.runners import TRAIN_STATE_FILE, TRAIN_STATE_JSON, DdpRunner
from mtal_ray.training.safe_load import RefusedFileError, load_tensors


class Payload:
    """Unpickling this would run ``touch MARKER``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _plant(path: Path, marker: Path, wrap=lambda p: {"state": p}) -> None:
    torch.save(wrap(Payload(marker)), path)


def _one_line(err: BaseException) -> str:
    text = str(err)
    assert "\n" not in text
    return text


def _runner(seed: int = 0) -> DdpRunner:
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 2)
    runner = DdpRunner()
    runner.module = model
    runner.optimizer = torch.optim.AdamW(model.parameters(), lr=0.01, betas=(0.8, 0.9))
    return runner


def test_training_state_round_trips_through_tensors_and_json(tmp_path):
    runner = _runner()
    runner.module(torch.ones(4, 3)).sum().backward()
    runner.optimizer.step()
    runner.save_state(tmp_path, rank=0)
    assert (tmp_path / TRAIN_STATE_FILE).is_file()
    groups = json.loads((tmp_path / TRAIN_STATE_JSON).read_text())["param_groups"]
    assert groups[0]["betas"] == [0.8, 0.9] and groups[0]["lr"] == 0.01
    again = _runner(seed=1)
    again.load_state(tmp_path)
    saved, loaded = runner.optimizer.state_dict(), again.optimizer.state_dict()
    assert loaded["param_groups"] == saved["param_groups"]
    for key, state in saved["state"].items():
        for name, value in state.items():
            assert torch.equal(loaded["state"][key][name], value)


def test_a_crafted_training_state_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "PWNED"
    runner = _runner()
    runner.save_state(tmp_path, rank=0)
    _plant(tmp_path / TRAIN_STATE_FILE, marker)
    with pytest.raises(RefusedFileError) as caught:
        runner.load_state(tmp_path)
    message = _one_line(caught.value)
    assert str(tmp_path / TRAIN_STATE_FILE) in message and "refused" in message
    assert "posix.system" in message
    assert not marker.exists()


def test_a_crafted_model_file_in_a_checkpoint_is_refused_and_never_runs(tmp_path, encoder):
    from mtal_ray.models.build import build_model
    from mtal_ray.tasks.registry import build_tasks

    vocabs = {"id": LabelVocab("id", ("a", "b"))}
    tasks = build_tasks(["id"], vocabs)
    config = ModelConfig(encoder=encoder, sharing="smt")
    model, collator = build_model(tasks, config, pretrained=False)
    checkpoint = tmp_path / "ckpt"
    info = CheckpointInfo(tasks=["id"], vocabs=vocabs, model=config)
    save_checkpoint(checkpoint, model, collator, info)
    load_checkpoint(checkpoint)  # the genuine one loads
    marker = tmp_path / "PWNED"
    _plant(checkpoint / "model.pt", marker, wrap=lambda p: {"encoder.weight": p})
    with pytest.raises(RefusedFileError) as caught:
        load_checkpoint(checkpoint)
    message = _one_line(caught.value)
    assert str(checkpoint / "model.pt") in message and "model weights" in message
    assert not marker.exists()


def test_damaged_and_missing_files_are_one_line_too(tmp_path):
    damaged = tmp_path / "model.pt"
    damaged.write_bytes(b"not a tensor file")
    with pytest.raises(RefusedFileError, match=r"model\.pt"):
        load_tensors(damaged, "model weights")
    with pytest.raises(RefusedFileError, match="no such file"):
        load_tensors(tmp_path / "none.pt", "model weights")
