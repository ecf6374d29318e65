"""One logging setup for every process of a run: what the job log shows, and what it hides.

A job log (``ray job logs -f``, ``python -m mtal_ray.launch … > log``) is how people watch
an experiment, so it carries our lines and the useful ones of Ray's:

* **Our progress** goes through :func:`progress` (one non-propagating logger, one handler
  on stdout): one line per step from the driver, one per training evaluation from the
  rank-0 Train worker only. Ray Train replaces ``print`` in its workers by a function
  that logs *and* tees to stdout, which printed every ``train step …`` line twice.
* **Ray Data progress** is drawn as bars only when the launcher writes to a terminal;
  otherwise the loop prints its own ``scoring: done/total (rate)`` line every 10 s
  (:meth:`~mtal_ray.driver.observers.ConsoleCallback.on_scoring_progress`).
* **Known-harmless warnings** of Ray (:data:`HARMLESS`, each with why it is harmless) are
  dropped at their source loggers in our own processes, and — for the processes Ray owns
  (the Train controller, its placement-group cleaner) and Ray's C++ core, whose lines we
  only see when they are forwarded to the launcher — by a filter on the launcher's
  forwarded-output stream (:func:`filter_forwarded_lines`). Everything else of Ray's is
  kept. The full output of every process is in Ray's session logs
  (``/tmp/ray/session_latest/logs``) either way.
* ``--verbose`` (``mtal-ray run``, ``python -m mtal_ray.launch``) turns all of this off:
  Ray's full output, Ray Data's bars, Ray Train's per-report lines.

Every process calls :func:`setup_logging` with its role (``launcher``, ``driver``,
``worker``, ``scorer``, ``trial``). The launcher's choices (verbose, interactive) travel
to the other processes as environment variables (:func:`env_vars`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "HARMLESS",
    "INTERACTIVE_ENV",
    "VERBOSE_ENV",
    "Harmless",
    "env_vars",
    "filter_forwarded_lines",
    "is_harmless",
    "is_interactive",
    "is_verbose",
    "progress",
    "quiet_transformers",
    "setup_logging",
]

#: ``1``: show Ray's full output (``--verbose``).
VERBOSE_ENV = "MTAL_VERBOSE"
#: ``1``: the launcher writes to a terminal (Ray Data may draw progress bars).
INTERACTIVE_ENV = "MTAL_INTERACTIVE"

#: The logger of our progress lines (see :func:`progress`).
PROGRESS_LOGGER = "mtal_ray.progress"


@dataclass(frozen=True)
class Harmless:
    """A message of Ray's that is known to be harmless, where it comes from and why.

    ``logger`` is the Python logger that emits it (``None``: Ray's C++ core, seen only as
    forwarded output); ``text`` a fragment of the message; ``traceback``: the message
    comes with a traceback (dropped with it).
    """

    logger: str | None
    text: str
    why: str
    traceback: bool = False


#: Ray's messages that the job log leaves out (kept in Ray's own log files).
HARMLESS: tuple[Harmless, ...] = (
    Harmless(
        "ray.train.v2._internal.execution.controller.placement_group_cleaner",
        "Failed to query Ray Train Controller actor state",
        "the placement-group cleaner polls the State API every few seconds and logs each "
        "failed poll (e.g. a busy machine); it keeps monitoring, nothing is lost",
    ),
    Harmless(
        None,
        "has constructor arguments in the object store",
        "Ray Train's PreemptionWatcher actor is created with its arguments in the object "
        "store; the core worker logs this at ERROR level on every training start",
    ),
    Harmless(
        "ray._private.authentication.authentication_token_setup",
        "Token authentication is enabled for this Ray cluster",
        "a notice on every local Ray start (Ray >= 2.59 enables token authentication)",
    ),
    Harmless(
        "ray.data._internal.progress",
        "Progress bars disabled",
        "Ray Data's hint when its bars are off: we turn them off in non-interactive "
        "output and print our own scoring progress line",
    ),
    Harmless(
        "ray.data._internal.progress",
        "Progress bars for operators disabled",
        "the same hint for per-operator bars",
    ),
    Harmless(
        "ray.train.v2._internal.execution.scaling_policy.autoscaling_coordinator_client",
        "Failed to send resource request",
        "a resource request to Ray's autoscaling coordinator timed out (a busy machine); "
        "Ray says so itself ('safe to ignore'), and training starts regardless",
        traceback=True,
    ),
)


def _quiet_train_reports() -> None:
    """Ray Train v2 logs every ``ray.train.report`` at INFO (under a logger named after
    its *file*) and every persisted checkpoint; the metrics still reach the driver."""
    try:
        from ray.train.v2._internal.execution import context as train_context
    except ImportError:  # pragma: no cover - other Ray versions
        return
    logging.getLogger(train_context.__file__).setLevel(logging.WARNING)
    # "Checkpoint successfully created at: …" on every report with a checkpoint
    logging.getLogger("ray.train.v2._internal.execution.storage").setLevel(logging.WARNING)


def is_verbose(environ: Mapping[str, str] | None = None) -> bool:
    """``--verbose`` was given (in this process or the launcher)."""
    return (environ if environ is not None else os.environ).get(VERBOSE_ENV) == "1"


def is_interactive(environ: Mapping[str, str] | None = None) -> bool:
    """The launcher writes to a terminal."""
    return (environ if environ is not None else os.environ).get(INTERACTIVE_ENV) == "1"


def env_vars() -> dict[str, str]:
    """This process's logging choices, for the runtime env of processes it starts."""
    return {k: os.environ[k] for k in (VERBOSE_ENV, INTERACTIVE_ENV) if k in os.environ}


def is_harmless(text: str, logger: str | None = None) -> Harmless | None:
    """The :data:`HARMLESS` entry ``text`` matches (from ``logger``, or any source)."""
    for entry in HARMLESS:
        if entry.text in text and (logger is None or entry.logger in (None, logger)):
            return entry
    return None


class _DropHarmless(logging.Filter):
    """Drops the :data:`HARMLESS` messages of one logger."""

    def __init__(self, logger: str) -> None:
        super().__init__()
        self.texts = tuple(e.text for e in HARMLESS if e.logger == logger)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is not ours to judge
            return True
        return not any(text in message for text in self.texts)


def _install_source_filters() -> None:
    for name in {e.logger for e in HARMLESS if e.logger is not None}:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropHarmless) for f in logger.filters):
            logger.addFilter(_DropHarmless(name))


def progress(line: str) -> None:
    """Print one progress line, once (Train's patched ``print`` would print it twice)."""
    logger = logging.getLogger(PROGRESS_LOGGER)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    logger.info(line)
    for handler in logger.handlers:
        handler.flush()


def _quiet_transformers() -> None:
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover - transformers is a dependency
        return
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # "Loading weights" bars of every worker


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """A Train worker's quiet transformers (no weight-loading reports or bars) for a while:
    a training in the driver's own process (``training.num_workers: 0``) logs like a
    worker, and the driver's verbosity comes back after it."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover - transformers is a dependency
        yield
        return
    if is_verbose():  # --verbose: everything, as in the workers
        yield
        return
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    _quiet_transformers()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _configure_ray_data(interactive: bool) -> None:
    try:
        import ray.data
    except ImportError:  # pragma: no cover - ray is a dependency
        return
    ray.data.DataContext.get_current().enable_progress_bars = interactive


def setup_logging(
    role: str,
    *,
    verbose: bool | None = None,
    interactive: bool | None = None,
) -> None:
    """Set up this process's logging for ``role`` (idempotent).

    Parameters
    ----------
    role
        ``launcher`` (the command's process: records ``verbose``/``interactive`` in the
        environment for the processes Ray starts), ``driver`` (the driver actor: our
        ``mtal_ray`` loggers on stdout, Ray Data bars only when interactive), ``trial``
        (a sweep trial: as the driver), ``worker`` (a Ray Train worker), ``scorer`` (a
        Ray Data scoring actor).
    verbose, interactive
        Default: from the environment (the launcher's choice); the launcher's own
        ``interactive`` default is whether stdout is a terminal.
    """
    if role == "launcher":
        if verbose is None:
            verbose = is_verbose()
        if interactive is None:
            interactive = sys.stdout.isatty()
        os.environ[VERBOSE_ENV] = "1" if verbose else "0"
        os.environ[INTERACTIVE_ENV] = "1" if interactive else "0"
    verbose = is_verbose() if verbose is None else verbose
    interactive = is_interactive() if interactive is None else interactive
    if role in ("driver", "trial"):
        ours = logging.getLogger("mtal_ray")
        if not ours.handlers:
            handler = logging.StreamHandler(sys.stdout)
            handler.setFormatter(logging.Formatter("%(message)s"))
            ours.addHandler(handler)
            ours.setLevel(logging.INFO)
            ours.propagate = False
        _configure_ray_data(interactive or verbose)
        if not (interactive or verbose):  # MLflow's artifact bars redraw into the job log
            os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if verbose:
        return
    _install_source_filters()
    if role in ("worker", "scorer"):
        _quiet_transformers()
    if role == "worker":
        _quiet_train_reports()


# ----------------------------------------------------------- forwarded output

#: A line of a Python traceback (what follows a harmless message logged with one).
_TRACEBACK_LINE = re.compile(r"^(\s|Traceback \(most recent call last\)|\^+$)")
_EXCEPTION_LINE = re.compile(r"^[\w.]+(Error|Exception|Timeout)\w*(:|$)")


def drop_harmless_lines(lines: list[str]) -> list[str]:
    """``lines`` without the :data:`HARMLESS` messages (and their tracebacks)."""
    kept: list[str] = []
    in_traceback = False
    for line in lines:
        if in_traceback:
            if _TRACEBACK_LINE.match(line):
                continue
            if _EXCEPTION_LINE.match(line):
                in_traceback = False
                continue
            in_traceback = False
        entry = is_harmless(line)
        if entry is not None:
            in_traceback = entry.traceback
            continue
        kept.append(line)
    return kept


_FORWARDED_HANDLER = "ray_print_logs"


def filter_forwarded_lines() -> bool:
    """Drop :data:`HARMLESS` lines from the worker output Ray forwards to this driver.

    Wraps the handler ``ray.init(log_to_driver=True)`` registers on Ray's forwarded-output
    dispatcher (idempotent; nothing to do with ``--verbose`` or without that handler).
    Returns True when the filter is in place.
    """
    if is_verbose():
        return False
    try:
        from ray._private.ray_logging import global_worker_stdstream_dispatcher as dispatcher
    except ImportError:  # pragma: no cover - another Ray version
        return False
    with dispatcher._lock:
        handlers = list(dispatcher.handlers)
    for name, handler in handlers:
        if name != _FORWARDED_HANDLER or getattr(handler, "_mtal_filtered", False):
            continue
        dispatcher.remove_handler(name)
        dispatcher.add_handler(name, _filtered(handler))
        return True
    return any(getattr(h, "_mtal_filtered", False) for _, h in handlers)


def _filtered(handler: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def handle(data: dict[str, Any]) -> None:
        lines = data.get("lines")
        if isinstance(lines, list):
            kept = drop_harmless_lines(lines)
            if not kept:
                return
            if len(kept) != len(lines):
                data = {**data, "lines": kept}
        handler(data)

    handle._mtal_filtered = True  # type: ignore[attr-defined]
    return handle
