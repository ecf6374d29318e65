"""Corpora as people have them, end to end through ``python -m mtal_ray.launch`` (issue 14):

* the AL loop on a CoNLL-2003-style file (``format: conll``, detected by content), which
  round-trips byte for byte through the reader and writer;
* a NER+RE corpus with nested entity mentions loads with
  ``data.overlapping_entities: keep-longest`` and trains end to end; the dropped counts are
  in the run log (one warning line) and in the MLflow params.

Tiny sizes and the tiny random encoder (``encoder`` fixture) keep both runs short.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mtal_ray.data.conll import format_conll, read_conll

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]

PEOPLE = ["Peter Blackburn", "Anna Smith", "Li Wei", "Jose Garcia"]
PLACES = ["Brussels", "New York", "Lima", "Oslo"]
ORGS = ["European Union", "Acme Corp", "Reuters"]
FILLER = ["said", "on", "Monday", "that", "the", "talks", "went", "well", "in", "."]


def conll2003_text(n: int, seed: int) -> str:
    """A CoNLL-2003-style file: -DOCSTART- lines, 4 space-separated columns, IOB tags."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if i % 10 == 0:
            out.append("-DOCSTART- -X- -X- O\n\n")
        words: list[tuple[str, str]] = []
        for kind, names in (("PER", PEOPLE), ("LOC", PLACES), ("ORG", ORGS)):
            if rng.random() < 0.7:
                name = rng.choice(names).split()
                words += [(w, ("B-" if k == 0 else "I-") + kind) for k, w in enumerate(name)]
            words += [(w, "O") for w in rng.sample(FILLER, 3)]
        out.append("".join(f"{w} NNP B-NP {t}\n" for w, t in words) + "\n")
    return "".join(out)


def nested_jsonl(n: int, seed: int) -> str:
    """NER+RE lines where every third sentence nests a Method inside a Task mention."""
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        tokens = ["We", "apply", "BERT", "fine", "tuning", "to", "parsing", "on", "Treebank"]
        entities = [
            {"start": 2, "end": 5, "type": "Task"},
            {"start": 6, "end": 7, "type": "Task"},
            {"start": 8, "end": 9, "type": "Material"},
        ]
        relations = [{"head": 0, "tail": 1, "type": "Used-for"}]
        if i % 3 == 0:
            entities.append({"start": 2, "end": 3, "type": "Method"})  # nested in entity 0
            relations.append({"head": 3, "tail": 2, "type": "Evaluated-on"})
        if rng.random() < 0.5:
            tokens[8] = "WSJ"
        lines.append(
            json.dumps(
                {
                    "id": f"s{seed}-{i}",
                    "tokens": tokens,
                    "entities": entities,
                    "relations": relations,
                }
            )
        )
    return "\n".join(lines) + "\n"


def experiment(folder: Path, encoder: str, data: dict, tasks: list[str]) -> Path:
    config = {
        "seed": 1,
        "data": {"tasks": tasks, "initial_count": 8, "dev_multiple": 1.0, **data},
        "model": {"sharing": "smt", "encoder": encoder},
        "training": {
            "num_workers": 0,  # local mode: what is checked is the corpus, not the workers
            "batch_size": 8,
            "max_steps": 6,
            "eval_every": 3,
            "patience": 1,
        },
        "scoring": {"k": 2, "concurrency": 1, "cpus_per_actor": 0.5, "batch_size": 16},
        "selection": {"method": "mt-avg" if len(tasks) > 1 else "st-ec", "n": 4},
        "al": {"iterations": 2},
        "tracking": {"experiment": "ci-corpora", "tracking_uri": f"sqlite:///{folder}/mlruns.db"},
    }
    if len(tasks) == 1:
        config["model"]["sharing"] = "st"
        config["selection"]["task"] = tasks[0]
    path = folder / "experiment.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def launch(config: Path, run_dir: Path, ray_address: str) -> str:
    """``python -m mtal_ray.launch`` on the session's shared Ray."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mtal_ray.launch",
            "--config",
            str(config),
            "--run-dir",
            str(run_dir),
        ],
        cwd=REPO,
        env={**os.environ, "RAY_ADDRESS": ray_address},
        capture_output=True,
        text=True,
        timeout=900,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


def test_al_loop_runs_on_a_conll2003_file(tmp_path, encoder, ray_address):
    corpus = tmp_path / "conll2003"
    corpus.mkdir()
    for split, n, seed in (("train", 40, 0), ("dev", 10, 1), ("test", 10, 2)):
        (corpus / f"{split}.txt").write_text(conll2003_text(n, seed))
    text = (corpus / "train.txt").read_text()
    assert format_conll(read_conll(corpus / "train.txt")) == text  # byte for byte
    config = experiment(tmp_path, encoder, {"path": str(corpus)}, ["ner"])
    out = launch(config, tmp_path / "run", ray_address)
    assert "finished 2 iterations" in out
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert len(state["labeled"]["ner"]) == 8 + 4


def test_nested_entities_train_end_to_end_with_keep_longest(tmp_path, encoder, ray_address):
    corpus = tmp_path / "scierc"
    corpus.mkdir()
    for split, n, seed in (("train", 36, 0), ("dev", 9, 1), ("test", 9, 2)):
        (corpus / f"{split}.json").write_text(nested_jsonl(n, seed))
    data = {"path": str(corpus), "overlapping_entities": "keep-longest"}
    config = experiment(tmp_path, encoder, data, ["ner", "re"])
    out = launch(config, tmp_path / "run", ray_address)
    assert "finished 2 iterations" in out
    # One warning line in the run log with the counts per split ...
    warning = [line for line in out.splitlines() if "read leniently" in line]
    assert len(warning) == 1, out[-4000:]
    assert "train: dropped 12 overlapping entities and 12 relations that used them" in warning[0]
    # ... and the counts in the MLflow params.
    with sqlite3.connect(tmp_path / "mlruns.db") as db:
        params = dict(db.execute("SELECT key, value FROM params").fetchall())
    assert params["data.dropped_entities.train"] == "12"
    assert params["data.dropped_relations.dev"] == "3"
