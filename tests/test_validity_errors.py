"""benchmarks/validity_errors.py on a fabricated sweep: a real (tiny) NER+RE checkpoint,
real CoNLL04 sentences, a finished and an unfinished trial (no Ray)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import validity_errors

from mtal_ray.data.corpus import load_corpus
from mtal_ray.data.vocab import build_vocabs
from mtal_ray.models import ModelConfig, build_model
from mtal_ray.models.inference import evaluate
from mtal_ray.models.tiny import make_tiny_encoder
from mtal_ray.tasks import build_tasks
from mtal_ray.training.checkpoint import CheckpointInfo, save_checkpoint

CONLL04 = Path(__file__).resolve().parents[2] / "shared" / "data" / "conll04"
TASKS = ["ner", "re"]


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not CONLL04.is_dir():
        pytest.skip(f"{CONLL04} is not there")
    folder = tmp_path_factory.mktemp("conll04")
    for split in ("train", "dev", "test"):
        lines = (CONLL04 / f"{split}.json").read_text(encoding="utf-8").splitlines()
        (folder / f"{split}.json").write_text("\n".join(lines[:12]) + "\n", encoding="utf-8")
    return folder


def _sweep(tmp: Path, corpus_dir: Path, recorded_shift: float) -> tuple[Path, dict]:
    corpus = load_corpus(corpus_dir)
    encoder = make_tiny_encoder(tmp / "encoder", layers=1, hidden=32)
    torch.manual_seed(0)
    vocabs = build_vocabs(corpus.splits["train"], TASKS)
    config = ModelConfig(encoder=encoder)
    model, collator = build_model(build_tasks(TASKS, vocabs), config)
    trial = tmp / "sweep" / "trials" / "mt-avg_seed=0"
    best = save_checkpoint(
        trial / "rounds" / "round_1" / "train" / "best",
        model,
        collator,
        CheckpointInfo(tasks=TASKS, vocabs=vocabs, model=config),
    )
    scores, _ = evaluate(model.eval(), collator, corpus.splits["test"])
    recorded = {t: scores[t]["f1"] + recorded_shift for t in TASKS}
    rounds = [
        {"iteration": i, "checkpoint": f"/elsewhere/round_{i}/train/best", "test": recorded}
        for i in (0, 1)
    ]  # the sweep was moved: the checkpoint is read under the trial's own folder
    state = {"iterations": 2, "rounds": rounds}
    (trial / "state.json").write_text(json.dumps(state), encoding="utf-8")
    unfinished = tmp / "sweep" / "trials" / "mt-r_seed=0"
    unfinished.mkdir(parents=True)
    (unfinished / "state.json").write_text(
        json.dumps({"iterations": 2, "rounds": rounds[:1]}), encoding="utf-8"
    )
    assert best.exists()
    return tmp / "sweep", scores


def test_final_models_are_evaluated_and_checked_against_the_recorded_f1(
    tmp_path: Path, corpus_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep, scores = _sweep(tmp_path, corpus_dir, 0.0)
    output = tmp_path / "errors.json"
    assert (
        validity_errors.main(
            ["--sweep", str(sweep), "--data", str(corpus_dir), "--output", str(output)]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "mt-r_seed=0: not finished, skipped" in printed
    result = json.loads(output.read_text(encoding="utf-8"))
    assert list(result) == ["mt-avg"] and list(result["mt-avg"]) == ["0"]
    for task in TASKS:
        got = result["mt-avg"]["0"][task]
        assert got == pytest.approx({m: scores[task][m] for m in ("precision", "recall", "f1")})


def test_a_recorded_f1_that_differs_stops_the_script(
    tmp_path: Path, corpus_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep, _ = _sweep(tmp_path, corpus_dir, 0.25)
    assert validity_errors.main(["--sweep", str(sweep), "--data", str(corpus_dir)]) == 1
    assert "wrong model or split" in capsys.readouterr().err
