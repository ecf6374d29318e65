"""The one logging setup (mtal_ray.logs): harmless Ray lines dropped, ours printed once."""

from __future__ import annotations

import io
import logging
from contextlib import redirect_stdout

import pytest

from mtal_ray import logs


@pytest.fixture(autouse=True)
def _not_verbose(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(logs.VERBOSE_ENV, "0")


def test_every_harmless_entry_says_where_and_why() -> None:
    assert logs.HARMLESS
    for entry in logs.HARMLESS:
        assert entry.text and len(entry.why) > 20
        assert entry.logger is None or entry.logger.startswith("ray.")


def test_source_filters_drop_only_the_listed_messages() -> None:
    logs.setup_logging("worker")
    name = "ray.train.v2._internal.execution.controller.placement_group_cleaner"
    logger = logging.getLogger(name)
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    handler = Keep()
    logger.addHandler(handler)
    try:
        logger.warning(
            "Failed to query Ray Train Controller actor state. State API may be temporarily"
            " unavailable. Continuing to monitor."
        )
        logger.warning("Cleaning up placement group = [x]")
    finally:
        logger.removeHandler(handler)
    assert seen == ["Cleaning up placement group = [x]"]


def test_forwarded_lines_lose_harmless_messages_and_their_tracebacks() -> None:
    lines = [
        "Requesting resources: {'CPU': 1.0} * 2",
        "Failed to send resource request for train-1d22. If this only happens transiently…",
        "Traceback (most recent call last):",
        '  File "/ray/autoscaling_coordinator_client.py", line 58, in send_resource_request',
        "    ray.get(",
        "           ^^^^^^^^^^^^^^^^^^^^^",
        "ray.exceptions.GetTimeoutError: Get timed out: some object(s) not ready.",
        "Attempting to start training worker group of size 2",
        "[2026-12-02 16:39:02,330 E 12081 12218] core_worker.cc:2465: Actor with class name: "
        "'PreemptionWatcher' and ID: '2fa2' has constructor arguments in the object store",
        "Token authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled…",
        "a real error: ValueError: bad",
    ]
    assert logs.drop_harmless_lines(lines) == [
        "Requesting resources: {'CPU': 1.0} * 2",
        "Attempting to start training worker group of size 2",
        "a real error: ValueError: bad",
    ]


def test_a_traceback_that_follows_a_kept_line_is_kept() -> None:
    lines = ["Something failed", "Traceback (most recent call last):", "  File x", "KeyError: 1"]
    assert logs.drop_harmless_lines(lines) == lines


def test_forwarded_output_filter_wraps_rays_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    from ray._private.ray_logging import global_worker_stdstream_dispatcher as dispatcher

    seen: list[list[str]] = []
    monkeypatch.setattr(
        dispatcher, "handlers", [("ray_print_logs", lambda d: seen.append(d["lines"]))]
    )
    assert logs.filter_forwarded_lines()
    assert logs.filter_forwarded_lines()  # idempotent
    assert len(dispatcher.handlers) == 1
    dispatcher.emit({"lines": ["Progress bars disabled. To enable, set …"], "pid": 1})
    dispatcher.emit({"lines": ["iteration 0/2: train", "Progress bars disabled."], "pid": 1})
    assert seen == [["iteration 0/2: train"]]


def test_verbose_keeps_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    from ray._private.ray_logging import global_worker_stdstream_dispatcher as dispatcher

    monkeypatch.setenv(logs.VERBOSE_ENV, "1")
    monkeypatch.setattr(dispatcher, "handlers", [("ray_print_logs", print)])
    assert not logs.filter_forwarded_lines()
    assert dispatcher.handlers == [("ray_print_logs", print)]


def test_launcher_records_its_choices_for_the_other_processes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    logs.setup_logging("launcher", verbose=True, interactive=False)
    assert logs.env_vars() == {logs.VERBOSE_ENV: "1", logs.INTERACTIVE_ENV: "0"}
    assert logs.is_verbose() and not logs.is_interactive()


def test_progress_prints_each_line_once() -> None:
    out = io.StringIO()
    logger = logging.getLogger(logs.PROGRESS_LOGGER)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    with redirect_stdout(out):
        logs.progress("train step 20/60 (epoch 6): loss 3.2421")
    assert out.getvalue() == "train step 20/60 (epoch 6): loss 3.2421\n"
    assert logger.propagate is False
    for handler in list(logger.handlers):  # bound to the redirected stream
        logger.removeHandler(handler)


def test_quiet_transformers_is_scoped(monkeypatch: pytest.MonkeyPatch) -> None:
    """Training in the driver's process logs like a worker (no weight-loading reports or
    bars) and leaves the driver's transformers settings as they were; --verbose keeps all."""
    from transformers.utils import logging as hf_logging

    monkeypatch.delenv(logs.VERBOSE_ENV, raising=False)
    before = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_info()
    hf_logging.enable_progress_bar()
    try:
        with logs.quiet_transformers():
            assert hf_logging.get_verbosity() == hf_logging.ERROR
            assert not hf_logging.is_progress_bar_enabled()
        assert hf_logging.get_verbosity() == hf_logging.INFO
        assert hf_logging.is_progress_bar_enabled()
        monkeypatch.setenv(logs.VERBOSE_ENV, "1")
        with logs.quiet_transformers():
            assert hf_logging.get_verbosity() == hf_logging.INFO
    finally:
        hf_logging.set_verbosity(before[0])
        (hf_logging.enable_progress_bar if before[1] else hf_logging.disable_progress_bar)()
