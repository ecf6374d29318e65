"""Project exceptions.

Every error a user can cause (a malformed file, an unknown label, a bad config value,
an infeasible budget, an empty pool, an unknown selector) is raised as a subclass of
:class:`MtalError` with a message that says *what* went wrong and *where*. The CLI
prints the message without a traceback and exits non-zero.

Every class here survives :mod:`pickle` with its message and attributes: Ray ships an
exception raised in a worker back to the driver by pickling it. :func:`user_error` finds
the user's error behind the wrapper Ray re-raises it in.
"""

from __future__ import annotations

from typing import Any


class MtalError(Exception):
    """Base class of every error a user of mtal_ray can cause."""


class DataFormatError(MtalError):
    """A corpus file is malformed; the message names the file and line (or sentence id)."""

    def __init__(self, path: object, line: int | str | None, problem: str) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {problem}")

    def __reduce__(self) -> tuple[Any, ...]:
        # ``args`` holds the formatted message, not the constructor's arguments
        return (type(self), (self.path, self.line, self.problem), self.__dict__ or None)


class UnseenLabelError(MtalError):
    """A dev/test split holds a label that the training split never shows."""


class ConfigError(MtalError):
    """A configuration key or value is invalid; the message names the key."""


class SelectionError(MtalError):
    """A selection request cannot be served (empty pool, unknown method, infeasible budget...)."""


class EmptyPoolError(SelectionError):
    """The unlabeled pool has no samples left to select from."""


class ScoringError(MtalError):
    """The pool cannot be scored (bad checkpoint, missing column, lost or duplicated rows...)."""


_MAX_WRAPPERS = 5


def unwrap_ray_error(err: BaseException) -> BaseException:
    """The original exception behind the wrappers Ray re-raises a remote error in.

    Ray re-raises an exception from an actor or task as a ``RayTaskError`` (a subclass of
    the original class whose message holds the remote traceback); its ``cause`` is the
    original exception. Follows ``cause`` (a few levels at most); ``err`` itself when it
    wraps nothing.
    """
    for _ in range(_MAX_WRAPPERS):
        cause = getattr(err, "cause", None)
        if not isinstance(cause, BaseException) or cause is err:
            break
        err = cause
    return err


def user_error(err: BaseException) -> MtalError | None:
    """The user-facing :class:`MtalError` behind ``err``, or ``None`` if there is none.

    Looks through Ray's wrappers (``cause``) and Python's exception chain (``__cause__``,
    then ``__context__``), so an error raised in a Ray worker and re-raised by a library
    as another exception is still found; the innermost original wins over a Ray wrapper
    that merely subclasses it.
    """
    seen: set[int] = set()
    stack: list[BaseException | None] = [err]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        original = unwrap_ray_error(current)
        if isinstance(original, MtalError):
            return original
        for link in (current, original):
            stack.extend([link.__context__, link.__cause__])  # __cause__ is looked at first
    return None
