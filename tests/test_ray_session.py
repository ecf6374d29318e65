"""Joining or starting Ray fails with one clear message, not a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mtal_ray.errors import MtalError
from mtal_ray.ray_session import JOB_CONFIG_ENV, ensure_ray, ephemeral_output_warning

TIMEOUT = (
    "The current node timed out during startup. This could happen because some of "
    "the raylet failed to startup or the GCS has become overloaded."
)


@pytest.fixture
def failing_init(monkeypatch):
    """``ray.init`` fails as it does when the local node cannot come up; returns the calls."""
    ray = pytest.importorskip("ray")
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    calls: list[dict] = []

    def init(**kwargs):
        calls.append(kwargs)
        raise Exception(TIMEOUT)

    monkeypatch.setattr(ray, "init", init)
    return calls


def test_a_local_start_is_retried_once(monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    events: list[str] = []

    def init(**kwargs):
        events.append("init")
        if events.count("init") == 1:
            raise Exception(TIMEOUT)

    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "shutdown", lambda: events.append("shutdown"))
    assert ensure_ray() is True
    assert events == ["init", "shutdown", "init"]


def test_a_local_start_failure_says_what_to_check(failing_init, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(MtalError) as err:
        ensure_ray()
    assert len(failing_init) == 2  # tried twice
    message = str(err.value)
    assert message.startswith("could not start or join a local Ray: The current node timed out")
    assert "ray start --head" in message and "\n" not in message


def test_a_cluster_failure_names_the_address(failing_init, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.7:6379")
    with pytest.raises(MtalError, match=r"RAY_ADDRESS=10\.0\.0\.7:6379: .*ray status"):
        ensure_ray()
    assert len(failing_init) == 1  # a named cluster is not retried


def test_an_initialized_ray_is_left_alone(monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    monkeypatch.setattr(ray, "init", lambda **kw: pytest.fail("ray.init called again"))
    assert ensure_ray() is False


def _job_env(runtime_env: dict) -> dict[str, str]:
    return {JOB_CONFIG_ENV: json.dumps({"runtime_env": runtime_env, "metadata": {}})}


def test_a_run_dir_inside_the_job_working_dir_copy_is_warned_about(tmp_path: Path) -> None:
    copy = tmp_path / "runtime_resources" / "working_dir_files" / "_ray_pkg_1"
    env = _job_env({"working_dir": "gcs://_ray_pkg_1.zip"})
    warning = ephemeral_output_warning("run directory", copy / "runs" / "x", environ=env, cwd=copy)
    assert warning is not None
    assert str(copy / "runs" / "x") in warning and "--run-dir /mnt/shared" in warning
    assert warning.startswith("warning: the run directory ")


@pytest.mark.parametrize(
    "env",
    [
        {},  # not under ray job submit
        _job_env({}),  # a job without --working-dir: cwd is the user's own directory
        _job_env({"working_dir": None}),
        {JOB_CONFIG_ENV: "not json"},
    ],
)
def test_no_warning_without_a_job_working_dir(tmp_path: Path, env: dict) -> None:
    path = tmp_path / "runs" / "x"
    assert ephemeral_output_warning("run directory", path, environ=env, cwd=tmp_path) is None


def test_no_warning_for_a_path_outside_the_copy(tmp_path: Path) -> None:
    env = _job_env({"working_dir": "gcs://_ray_pkg_1.zip"})
    copy = tmp_path / "copy"
    shared = tmp_path / "shared" / "runs" / "x"
    assert ephemeral_output_warning("run directory", shared, environ=env, cwd=copy) is None
