"""Shared fixtures: where the real corpora are, and a skip when they are absent."""

from __future__ import annotations

import itertools
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests draw the same examples on every run (CI cannot fail by luck); set
# HYPOTHESIS_PROFILE=explore to search with fresh random examples.
settings.register_profile("repeatable", derandomize=True, print_blob=True)
settings.register_profile("explore", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real corpora (``../shared/data`` beside the repository); skip when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real corpora not found at {SHARED_DATA}")
    return SHARED_DATA


_HEADS = itertools.count()


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """The address of ONE local 2-CPU Ray head shared by the tests of a module.

    A local Ray start costs 10-20 s on a loaded 2-core machine; tests that only need *a*
    Ray join this head instead: in process (:func:`ray_session`) or in a subprocess with
    ``RAY_ADDRESS`` set to it (:func:`mtal_ray.ray_session.ensure_ray` joins it).
    Tests of Ray's own start-up and teardown (``kill -9`` of a launcher that must take its
    Ray with it, a head with a dashboard) keep a Ray of their own. Started on first use.
    One head per module, not per session: in a full-suite run a head shared by every module
    stopped starting actors after about 25 minutes ("cancelled before it started running",
    cause not found), while each module passed on its own head.
    """
    pytest.importorskip("ray")
    from ray_head import start_head, stop_head

    # short: Unix socket paths
    temp_dir = Path(f"/tmp/mtal_shared_{os.getpid()}_{next(_HEADS)}")
    address = start_head(temp_dir, num_cpus=2)
    try:
        yield address
    finally:
        stop_head(temp_dir)


@pytest.fixture(scope="module")
def ray_session(ray_address: str):
    """Ray in this process, joined to the session's shared head (disconnected after the
    module)."""
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        ray.shutdown()
    ray.init(address=ray_address, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny random BERT encoder on disk (fast stand-in for MiniLM in Ray tests)."""
    from mtal_ray.models.tiny import make_tiny_encoder

    return make_tiny_encoder(tmp_path_factory.mktemp("tiny") / "encoder")


# --- the end of the test process ----------------------------------------------------------
# CI once saw the suite pass (700 passed, summary printed) and the pytest process then die
# of SIGSEGV (exit 139) while the interpreter tore itself down: by then the process has
# loaded torch, DeepSpeed, Ray (whose Ray Data usage poller is a daemon thread that lives
# until exit), MLflow and more, and their native destructors run in an order nobody
# chose. The verdict of the suite is pytest's exit status: the process ends with it once
# pytest is done, after Ray is disconnected and the output flushed, without running that
# teardown. ``MTAL_TEST_FULL_TEARDOWN=1`` keeps the interpreter's own exit (to chase the
# crash, with ``python -X faulthandler``).
_EXIT_STATUS = pytest.StashKey[int]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[_EXIT_STATUS] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    status = config.stash.get(_EXIT_STATUS, None)
    if os.environ.get("MTAL_TEST_FULL_TEARDOWN") == "1" or status is None:
        return
    if hasattr(config, "workerinput"):  # a pytest-xdist worker reports to its controller
        return
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
