"""The config system: YAML + overrides, one clear error naming the key."""

from __future__ import annotations

from pathlib import Path

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
        ("data.format=xml", "data.format: Input should be 'conllu', 'slu'"),  # ... or 'conll'
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


QUICKSTART = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["selection.beta=0.5"], "selection.beta needs selection.task"),
        (["selection.task=id"], "selection.task 'id' given without selection.beta"),
        (["selection.method=mt-r", "selection.beta=0.5", "selection.task=id"], "selection.beta"),
        (["selection.method=mt-max", "selection.weights={sf: 1}"], "selection.weights"),
        (["selection.method=mt-ec"], "set selection.task"),
        (["selection.method=st-da"], "set selection.task"),
        (["selection.method=blp-stcs", "selection.budget=50"], "set selection.task"),
        (
            [
                "selection.method=blp-joint-min",
                "selection.budget=50",
                "selection.beta=0.2",
                "selection.task=id",
            ],
            "selection.beta",
        ),
        (["selection.method=mt-nope"], "selection.method: unknown method 'mt-nope'"),
        (["selection.method=blp-udjs"], "selection.budget: blp-udjs selects under a budget"),
        (["selection.method=blp-udjs", "selection.n=5"], "selection.n:"),
        (["selection.n=5", "selection.budget=10"], "selection.budget: set n or budget"),
        (["selection.beta=0.5", "selection.weights={sf: 1}"], "selection.beta: set either"),
        (["selection.beta=1.5", "selection.task=id"], "selection.beta: Input should be less"),
        (["selection.beta=0.5", "selection.task=ner"], "selection.task: 'ner' is not one of"),
        (["selection.weights={sf: 1, re: 1}"], "selection.weights: 're' is not one of data"),
        (["selection.weights={sf: -1}"], "selection.weights must be non-negative"),
        (
            ["selection.method=mt-ec", "selection.task=id", "scoring.tasks=[sf]"],
            "selection.task: 'id' is not one of scoring.tasks",
        ),
        (
            ["selection.method=mt-da", "selection.task=sf", "scoring.ec_only=true"],
            "scoring.ec_only: mt-da reads dropout agreement",
        ),
        (
            ["selection.method=blp-eqb", "selection.budget=50", "selection.time_limit=0"],
            "selection.time_limit: Input should be greater than 0",
        ),
        (["selection.nope=1"], "selection.nope: unknown key"),
    ],
)
def test_a_selection_the_selector_would_refuse_fails_when_loaded(overrides, needle):
    with pytest.raises(ConfigError) as info:
        load_config(QUICKSTART, overrides)
    message = str(info.value)
    assert needle in message and "\n" not in message


@pytest.mark.parametrize(
    "overrides",
    [
        ["selection.beta=0.7", "selection.task=id"],
        ["selection.method=mt-par", "selection.weights={sf: 2, id: 1}"],
        ["selection.method=mt-r"],
        ["selection.method=st-r", "selection.task=sf"],
        ["selection.method=mt-avgda"],
        [
            "selection.method=blp-joint-rrf",
            "selection.budget=80",
            "selection.beta=0.3",
            "selection.task=sf",
        ],
        ["selection.method=blp-stcs", "selection.budget=80", "selection.task=id"],
        ["selection.method=mt-min", "selection.budget=80"],  # GRD_AL
    ],
)
def test_good_selections_load(overrides):
    cfg = load_config(QUICKSTART, overrides)
    assert type(cfg.selector_for_round(1)) is cfg.selection.entry.cls


@pytest.mark.parametrize("section", ["training", "scoring", "selection"])
def test_a_section_seed_in_an_experiment_is_refused(section):
    with pytest.raises(ConfigError, match=rf"^{section}\.seed: 3 would be ignored.*set seed"):
        load_config(QUICKSTART, [f"{section}.seed=3"])
    assert load_config(QUICKSTART, [f"{section}.seed=0"]).seed == 0  # the default is fine


def test_round_seeds_are_derived_in_one_place():
    cfg = load_config(QUICKSTART, ["seed=7", "selection.method=mt-r"])
    assert [cfg.seed_for("training", i) for i in range(3)] == [7, 8, 9]
    assert cfg.seed_for("scoring", 2) == 7002 and cfg.selection_seed(2) == 9
    training = cfg.training_for_round(2)
    assert training.seed == 9 and cfg.training.seed == 0 and training.max_steps == 60
    scoring = cfg.scoring_for_round(1, tasks=["sf", "id"])
    assert (scoring.seed, scoring.ec_only, scoring.tasks) == (7001, True, ["sf", "id"])
    assert cfg.scoring.seed == 0 and cfg.scoring.tasks is None  # the config is unchanged
    assert cfg.scoring_for_round(1, tasks=["sf"], ec_only=False).ec_only is False
    assert repr(cfg.selector_for_round(2)) == "MtR(seed=9)"
    da = load_config(QUICKSTART, ["selection.method=mt-avgda", "scoring.tasks=[id, sf]"])
    scoring = da.scoring_for_round(0, tasks=["sf", "id"])
    assert scoring.ec_only is False and scoring.tasks == ["id", "sf"]
    forced = load_config(QUICKSTART, ["scoring.ec_only=true"])
    assert forced.scoring_for_round(0, tasks=["sf"], ec_only=False).ec_only is True


def test_updated_returns_a_validated_copy_naming_the_key():
    cfg = load_config(QUICKSTART)
    copy = cfg.training.updated(lr=1e-3)
    assert copy.lr == 1e-3 and cfg.training.lr != 1e-3
    with pytest.raises(ConfigError, match=r"^training\.lr: Input should be greater than 0"):
        cfg.training.updated(lr=-1)
    with pytest.raises(ConfigError, match=r"^scoring\.nope: unknown key"):
        cfg.scoring.updated(nope=1)
    with pytest.raises(ConfigError, match=r"^selection\.beta needs selection\.task"):
        cfg.selection.updated(beta=0.5)
    assert cfg.selection.updated(seed=4).selector() == cfg.selection.selector()  # mt-avg
    assert cfg.model.updated(sharing="cmt").sharing == "cmt"
    assert cfg.data.updated(initial_count=5).initial_count == 5
    assert cfg.updated(seed=3).training_for_round(1).seed == 4


def test_sections_share_one_base_and_keep_their_semantics():
    from pydantic import ValidationError

    from mtal_ray.sections import Section

    cfg = load_config(QUICKSTART)
    for name in ("data", "model", "training", "scoring", "selection", "al", "tracking"):
        section = getattr(cfg, name)
        assert isinstance(section, Section) and section.section == name
    with pytest.raises(ValidationError):
        cfg.selection.n = 3  # frozen
    with pytest.raises(ValidationError):
        cfg.training.lr = -1.0  # validated on assignment


def test_launch_refuses_a_bad_selection_before_ray_starts(tmp_path):
    """The bug of issue 13: beta without a task trained and scored for minutes first."""
    import subprocess
    import sys
    import time

    run_dir = tmp_path / "run"
    started = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mtal_ray.launch",
            "--config",
            str(QUICKSTART),
            "selection.beta=0.5",
            "--run-dir",
            str(run_dir),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    seconds = time.monotonic() - started
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "selection.beta" in lines[0] and "selection.task" in lines[0]
    assert seconds < 15
    assert not run_dir.exists()
    assert "Ray" not in proc.stdout + proc.stderr  # no "Started a local Ray instance"
