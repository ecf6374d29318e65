"""``mtal-ray score``: argument and config errors exit 2 with one line, nothing written."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mtal_ray.cli import main
from mtal_ray.cli.scoring import scoring_config_from_overrides
from mtal_ray.errors import ConfigError


def test_overrides_with_and_without_section_prefix() -> None:
    cfg = scoring_config_from_overrides(["k=5", "scoring.concurrency=2", "cpus_per_actor=0.5"])
    assert (cfg.k, cfg.concurrency, cfg.cpus_per_actor, cfg.ec_only) == (5, 2, 0.5, False)
    assert scoring_config_from_overrides([], ec_only=True).ec_only


def test_bad_override_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"scoring\.kk: unknown key"):
        scoring_config_from_overrides(["kk=3"])
    with pytest.raises(ConfigError, match=r"scoring\.k"):
        scoring_config_from_overrides(["k=1"])


def test_cli_errors_exit_2_without_output(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "conf.parquet"
    base = ["score", "--data", str(tmp_path), "--output", str(out)]
    assert main([*base, "--checkpoint", str(tmp_path / "missing")]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
    assert main([*base, "--checkpoint", str(tmp_path), "batch_size=0"]) == 2
    assert "scoring.batch_size" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.integration
def test_score_command_end_to_end(tmp_path, capsys, monkeypatch, ray_address) -> None:  # type: ignore[no-untyped-def]
    import torch

    monkeypatch.setenv("RAY_ADDRESS", ray_address)  # joins the session's shared Ray

    from mtal_ray.data.synthetic import make_synthetic_corpus, write_synthetic_corpus
    from mtal_ray.data.vocab import build_vocabs
    from mtal_ray.models import ModelConfig, build_model
    from mtal_ray.scoring.table import read_confidence_table, table_metadata
    from mtal_ray.tasks.registry import build_tasks
    from mtal_ray.training.checkpoint import CheckpointInfo, save_checkpoint

    data = write_synthetic_corpus(tmp_path / "data", n_train=30, n_dev=12, n_test=2, seed=1)
    vocabs = build_vocabs(make_synthetic_corpus(30, 12, 2, seed=1).split("train"), ["sf", "id"])
    torch.manual_seed(0)
    model, collator = build_model(build_tasks(["sf", "id"], vocabs), ModelConfig())
    info = CheckpointInfo(tasks=["sf", "id"], vocabs=vocabs, model=ModelConfig())
    ckpt = save_checkpoint(tmp_path / "ckpt", model, collator, info)
    out = tmp_path / "conf.parquet"
    argv = ["score", "--checkpoint", str(ckpt), "--data", str(data / "dev"), "--output", str(out)]
    assert main([*argv, "k=3", "batch_size=4"]) == 0
    table = read_confidence_table(out)
    assert table.num_rows == 12
    assert table.column_names == [
        "id", "n_tokens", "sf.ec", "sf.da", "sf.n_entities", "id.ec", "id.da",
    ]  # fmt: skip
    assert table_metadata(table)["k"] == 3
    assert "sentences/s" in capsys.readouterr().out

    # calibrate=true: temperatures fitted on annotated dev data, stored with the table,
    # and applied to EC (the deterministic pass is the same, so only T changes EC)
    calibrated = tmp_path / "calibrated.parquet"
    argv = ["score", "--checkpoint", str(ckpt), "--data", str(data / "dev")]
    argv += ["--output", str(calibrated), "--calibration-data", str(data / "dev")]
    assert main([*argv, "--ec-only", "calibrate=true", "batch_size=4"]) == 0
    assert "calibrated on dev (12 sentences)" in capsys.readouterr().err
    cal = read_confidence_table(calibrated)
    temperatures = table_metadata(cal)["temperatures"]
    assert set(temperatures) == {"sf", "id"} and all(t > 0 for t in temperatures.values())
    for task, t in temperatures.items():
        plain, scaled = table[f"{task}.ec"].to_numpy(), cal[f"{task}.ec"].to_numpy()
        if abs(t - 1.0) > 1e-2:
            assert not np.allclose(plain, scaled), task
        else:
            np.testing.assert_allclose(plain, scaled, atol=1e-3)


NESTED = (
    '{"id": "n1", "tokens": ["BERT", "fine", "tuning"], "entities": ['
    '{"start": 0, "end": 3, "type": "Task"}, {"start": 0, "end": 1, "type": "Method"}], '
    '"relations": []}\n'
)


@pytest.mark.parametrize("command", ["score", "predict"])
def test_corpus_reading_options_reach_the_reader(tmp_path, capsys, command) -> None:  # type: ignore[no-untyped-def]
    """``score`` and ``predict`` read a corpus as ``data stats`` does (``--overlapping-
    entities``, ``--columns``, ``--strict-bio``): a nested-mention file is refused without
    the option and read with it (the command then stops at its next check, before Ray)."""
    data = tmp_path / "pool.json"
    data.write_text(NESTED)
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "encoder").mkdir()  # looked at, never loaded here
    meta = {"tasks": ["ner"], "vocabs": {}, "model": {}}
    (tmp_path / "ckpt" / "meta.json").write_text(json.dumps(meta))
    (tmp_path / "ckpt" / "model.pt").write_bytes(b"")
    out = tmp_path / "out"
    if command == "score":
        argv = ["score", "--checkpoint", str(tmp_path / "ckpt"), "--split", "nope"]
    else:
        argv = ["predict", "--model", str(tmp_path / "no-such-model")]
    argv += ["--data", str(data), "--output", str(out)]
    assert main(argv) == 2
    assert "entities 0 and 1 overlap" in capsys.readouterr().err
    assert main([*argv, "--overlapping-entities", "keep-longest"]) == 2
    err = capsys.readouterr().err
    assert "overlap" not in err
    if command == "score":
        assert "'nope'" in err
    else:  # not a path and not a model URI: one line, no MLflow traceback
        assert "no-such-model: no such run directory or checkpoint, and MLflow cannot" in err
    assert not out.exists()
