"""Which scorers a warm task worker keeps (``scoring.compute: tasks``), without Ray."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from mtal_ray.scoring import pool
from mtal_ray.scoring.pool import MAX_WARM_SCORERS, WARM_IDLE_S, _warm_scorer


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    pool._WARM.clear()
    yield
    pool._WARM.clear()


class Builds:
    """A ``build`` per call token that counts how often each call's scorer was built."""

    def __init__(self) -> None:
        self.count: dict[str, int] = {}

    def __call__(self, call: str) -> Any:
        def build() -> Any:
            self.count[call] = self.count.get(call, 0) + 1
            return ("scorer", call, self.count[call])

        return build


def test_interleaved_calls_each_build_their_scorer_once() -> None:
    builds = Builds()
    seen = [_warm_scorer(c, builds(c), now=float(t)) for t, c in enumerate("ABABAB")]
    assert builds.count == {"A": 1, "B": 1}
    assert seen[0] is seen[2] is seen[4] and seen[1] is seen[3] is seen[5]


def test_beyond_the_most_recent_the_oldest_scorer_goes() -> None:
    builds = Builds()
    calls = [f"c{i}" for i in range(MAX_WARM_SCORERS + 1)]
    for t, call in enumerate(calls):
        _warm_scorer(call, builds(call), now=float(t))
    assert list(pool._WARM) == calls[1:]  # c0, the least recently used, went
    _warm_scorer("c0", builds("c0"), now=10.0)
    assert builds.count["c0"] == 2 and "c1" not in pool._WARM
    _warm_scorer("c4", builds("c4"), now=11.0)  # still there: no rebuild
    assert builds.count["c4"] == 1 and list(pool._WARM)[-1] == "c4"


def test_a_call_idle_for_longer_than_the_limit_is_dropped() -> None:
    builds = Builds()
    _warm_scorer("old", builds("old"), now=0.0)
    _warm_scorer("new", builds("new"), now=WARM_IDLE_S + 1.0)
    assert list(pool._WARM) == ["new"]
    _warm_scorer("old", builds("old"), now=WARM_IDLE_S + 2.0)
    assert builds.count["old"] == 2
