"""What the scorer needs from a model: two kinds of forward pass over word lists."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from mtal_ray.scoring.outputs import TaskOutput

__all__ = ["ScoringModel"]


@runtime_checkable
class ScoringModel(Protocol):
    """A loaded model seen from the scorer.

    :func:`mtal_ray.scoring.model_adapter.load_scoring_model` wraps a trained checkpoint
    in this interface; tests may pass any object that has it.
    """

    @property
    def tasks(self) -> tuple[str, ...]:
        """Tasks the model predicts, in order."""
        ...

    def deterministic(
        self, tokens: Sequence[Sequence[str]], tasks: Sequence[str]
    ) -> tuple[Mapping[str, TaskOutput], Any]:
        """One pass with dropout off.

        Returns the outputs per task and a context for :meth:`stochastic` (e.g. the
        predicted entities that ``re`` pairs are built from, so every pass scores the
        same pairs).
        """
        ...

    def stochastic(
        self, tokens: Sequence[Sequence[str]], tasks: Sequence[str], copies: int, context: Any
    ) -> list[Mapping[str, TaskOutput]]:
        """``copies`` passes with dropout on (independent masks), one output per pass."""
        ...
