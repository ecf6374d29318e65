"""``mtal-ray score``: argument and config errors exit 2 with one line, nothing written."""

from __future__ import annotations

import pytest

from mtal_ray.cli import main
from mtal_ray.errors import ConfigError
from mtal_ray.scoring.command import scoring_config_from_overrides


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
