"""Credentials in URIs are redacted wherever a URI is logged, stored or printed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from mtal_ray.mlflow_tracking import flatten
from mtal_ray.redact import is_redacted, redact_secrets, redact_uri, restore_uri
from mtal_ray.sweep.results import TrialRecord, save_sweep_info

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_driver_loop import _config, _loop

SECRET = "s3cr3t-pa55"


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (
            "https://alice:s3cr3t-pa55@mlflow.example.com:5000/",
            "https://alice:***@mlflow.example.com:5000/",
        ),
        ("http://:s3cr3t-pa55@host/", "http://:***@host/"),
        (
            "postgresql+psycopg2://bob:s3cr3t-pa55@db:5432/mlflow",
            "postgresql+psycopg2://bob:***@db:5432/mlflow",
        ),
        ("https://host/api?token=s3cr3t-pa55&x=1", "https://host/api?token=***&x=1"),
        ("s3://b/k?X-Amz-Signature=s3cr3t-pa55", "s3://b/k?X-Amz-Signature=***"),
        (
            "cannot reach http://a:s3cr3t-pa55@h:5000 (refused)",
            "cannot reach http://a:***@h:5000 (refused)",
        ),
        ("sqlite:////tmp/runs/mlruns.db", "sqlite:////tmp/runs/mlruns.db"),
        ("postgresql://bob@db/mlflow", "postgresql://bob@db/mlflow"),
        ("databricks", "databricks"),
        ("a=b, c=d", "a=b, c=d"),
        ("", ""),
    ],
)
def test_redact_uri(uri, expected):
    assert redact_uri(uri) == expected
    assert SECRET not in redact_uri(uri)
    assert redact_uri(redact_uri(uri)) == redact_uri(uri)  # idempotent


def test_redact_secrets_walks_nested_values():
    config = {
        "tracking": {"tracking_uri": f"https://u:{SECRET}@h/"},
        "n": 3,
        "l": [f"x://a:{SECRET}@b"],
    }
    out = redact_secrets(config)
    assert out == {"tracking": {"tracking_uri": "https://u:***@h/"}, "n": 3, "l": ["x://a:***@b"]}
    assert SECRET in config["tracking"]["tracking_uri"]  # the original is untouched


def test_restore_uri_connects_without_the_mask():
    redacted = redact_uri(f"https://alice:{SECRET}@mlflow.example.com/?token={SECRET}&x=1")
    assert is_redacted(redacted) and not is_redacted("https://mlflow.example.com/")
    assert restore_uri(redacted, {}) == "https://mlflow.example.com/?x=1"
    assert restore_uri(redacted, {"MLFLOW_TRACKING_URI": "https://real"}) == "https://real"
    assert (
        restore_uri("sqlite:///x.db", {"MLFLOW_TRACKING_URI": "https://real"}) == "sqlite:///x.db"
    )


def test_mlflow_params_hold_no_password():
    params = flatten({"tracking": {"tracking_uri": f"https://u:{SECRET}@h/", "enabled": True}})
    assert params == {"tracking.tracking_uri": "https://u:***@h/", "tracking.enabled": "True"}


def test_config_json_of_a_run_holds_no_password(tmp_path):
    config = _config(f"tracking.tracking_uri=https://alice:{SECRET}@mlflow.example.com/")
    assert SECRET in config.tracking.tracking_uri  # the real URI is kept for connecting
    run_dir = tmp_path / "run"
    _loop(run_dir, config).run()
    written = "".join(p.read_text(errors="replace") for p in run_dir.rglob("*.json"))
    assert SECRET not in written
    stored = json.loads((run_dir / "config.json").read_text())
    assert stored["tracking"]["tracking_uri"] == "https://alice:***@mlflow.example.com/"


def test_trial_and_sweep_records_hold_no_password(tmp_path):
    record = TrialRecord(name="t", params={})
    record.error = f"MlflowException: cannot reach https://u:{SECRET}@h/api"
    record.save(tmp_path)
    save_sweep_info(tmp_path, {"tracking_uri": f"https://u:{SECRET}@h/", "config": {}})
    for name in ("trial.json", "sweep.json"):
        assert SECRET not in (tmp_path / name).read_text()
