"""Project exceptions.

Every error a user can cause (a malformed file, an unknown label, a bad config value,
an infeasible budget, an empty pool, an unknown selector) is raised as a subclass of
:class:`MtalError` with a message that says *what* went wrong and *where*. The CLI
prints the message without a traceback and exits non-zero.
"""

from __future__ import annotations


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
