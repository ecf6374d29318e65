"""Joining or starting Ray fails with one clear message, not a traceback."""

from __future__ import annotations

import pytest

from mtal_ray.errors import MtalError
from mtal_ray.ray_session import ensure_ray

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
