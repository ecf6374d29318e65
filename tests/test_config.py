"""The config system: YAML + overrides, one clear error naming the key."""

from __future__ import annotations

import pytest

from mtal_ray.config import ExperimentConfig, apply_overrides, load_config
from mtal_ray.errors import ConfigError


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 1\ndata:\n  path: corpus\n  tasks: [sf, id]\n")
    cfg = load_config(path, ["data.initial_count=50", "seed=4"])
    assert isinstance(cfg, ExperimentConfig)
    assert cfg.seed == 4 and cfg.data.tasks == ["sf", "id"] and cfg.data.initial_count == 50
    assert cfg.data.initial_fraction is None


def test_overrides_create_nested_sections_without_touching_input():
    raw = {"data": {"path": "x"}}
    out = apply_overrides(raw, ["a.b.c=[1, 2]"])
    assert out["a"] == {"b": {"c": [1, 2]}} and "a" not in raw


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("data.initial_fraction=abc", "data.initial_fraction: Input should be a valid number"),
        ("data.dev_multiple=-1", "data.dev_multiple: Input should be greater than 0"),
        ("data.nope=1", "data.nope: unknown key"),
        ("data.format=xml", "data.format: Input should be 'conllu', 'slu' or 'jsonl'"),
        ("nonsense", "not of the form key.sub=value"),
    ],
)
def test_bad_values_name_the_key(override, needle):
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    assert needle in str(info.value)


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(bad)


def test_every_shipped_config_validates():
    from pathlib import Path

    configs = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
    assert any(p.name == "quickstart.yaml" for p in configs)
    for path in configs:
        cfg = load_config(path)
        assert cfg.data.path, path
