"""Task sampling for partially annotated training data (no torch, no Ray here).

When rows are annotated for different task subsets (disjoint selection such as UDJS
produces this), training can draw **one task per step** and a batch of rows annotated for
that task, and update with that task's loss only (Søgaard & Goldberg 2016; HMTL's
proportional sampling; SC-LSTM's Algorithm 1). ``training.task_sampling`` selects how:

===============  ==========================================================================
``joint``        (default) no sampling: every batch is drawn from all rows and every task
                 annotated in it contributes ``λ_t · L_t`` (the paper's setting).
``uniform``      ``p_t = 1 / T`` over the tasks with at least one annotated row.
``proportional`` ``p_t = n_t / Σ n``, ``n_t`` = rows annotated for ``t`` (HMTL).
``temperature``  ``p_t ∝ n_t^(1/τ)`` with ``τ = training.sampling_temperature``: ``τ = 1`` is
                 proportional, ``τ → ∞`` uniform (τ = 2-5 is common in multilingual MTL).
===============  ==========================================================================

The loss of a sampled step is ``λ_t · L_t`` (``training.loss_weights``, default 1); the
other tasks' losses enter multiplied by 0, which keeps every parameter in the graph (DDP
needs that) without moving it by gradient.

Draws are a pure function of ``(seed, step)``: the task of step ``s`` comes from a seeded
stream, and the ``j``-th batch of task ``t`` is the ``j``-th slice of that task's
concatenated per-epoch permutations (each annotated row once per epoch, Algorithm 1's "an
example not yet considered"). So every worker draws the same task and global batch
without communication, and a resumed run continues the exact sequence from its step.

Example YAML::

    training:
      task_sampling: temperature    # joint | uniform | proportional | temperature
      sampling_temperature: 2.0
      loss_weights: {ner: 1.0, re: 2.0}
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from mtal_ray.errors import ConfigError

#: Values of ``training.task_sampling``.
SAMPLING_METHODS = ("joint", "uniform", "proportional", "temperature")

_CHUNK = 4096  # task draws generated per seeded chunk


def task_probabilities(
    sizes: Mapping[str, int], method: str, temperature: float = 1.0
) -> dict[str, float]:
    """Probability of drawing each task, from its number of annotated rows.

    Tasks with no annotated row get probability 0 (no batch could be drawn for them).

    Raises
    ------
    ConfigError
        Unknown ``method`` (or ``joint``, which does not sample), a non-positive
        ``temperature``, or no task with an annotated row.
    """
    if method not in SAMPLING_METHODS[1:]:
        raise ConfigError(
            f"training.task_sampling: {method!r} does not sample tasks "
            f"(sampling methods: {', '.join(SAMPLING_METHODS[1:])})"
        )
    if temperature <= 0:
        raise ConfigError(f"training.sampling_temperature: {temperature} must be positive")
    counts = np.array([max(0, int(n)) for n in sizes.values()], dtype=float)
    if not counts.any():
        raise ConfigError(
            f"training.task_sampling: no training row is annotated for any of the tasks "
            f"({', '.join(sizes)})"
        )
    present = counts > 0
    if method == "uniform":
        mass = present.astype(float)
    elif method == "proportional":
        mass = counts
    else:
        mass = np.where(present, counts ** (1.0 / temperature), 0.0)
    return dict(zip(sizes, (mass / mass.sum()).tolist(), strict=True))


def annotated_rows(table: pa.Table, columns: Mapping[str, str]) -> dict[str, np.ndarray]:
    """Per task, the indices of ``table``'s rows whose ``columns[task]`` is not null."""
    out: dict[str, np.ndarray] = {}
    for task, column in columns.items():
        if column not in table.column_names:
            out[task] = np.zeros(0, dtype=np.int64)
            continue
        valid = np.asarray(table.column(column).is_valid().to_numpy(zero_copy_only=False))
        out[task] = np.flatnonzero(valid).astype(np.int64)
    return out


def combine_losses(
    losses: Mapping[str, Any], weight: Callable[[str], float], task: str | None = None
) -> Any:
    """``Σ λ_t L_t`` (joint, ``task=None``) or ``λ_task L_task + Σ 0 · L_other`` (sampled)."""
    return sum(
        (weight(name) if task is None or name == task else 0.0) * loss
        for name, loss in losses.items()
    )


class TaskSampler:
    """Draws ``(task, batch rows)`` per training step, deterministically from ``seed``.

    Parameters
    ----------
    rows
        Task -> indices of the training rows annotated for it (:func:`annotated_rows`).
    probabilities
        Task -> probability of being drawn (:func:`task_probabilities`); same keys.
    batch_size
        Rows per global batch (every worker's micro batch × workers).
    seed
        Fixes the task stream and the per-task permutations.
    """

    def __init__(
        self,
        rows: Mapping[str, np.ndarray],
        probabilities: Mapping[str, float],
        batch_size: int,
        seed: int = 0,
    ) -> None:
        if set(rows) != set(probabilities):
            raise ValueError("rows and probabilities must name the same tasks")
        self.tasks = list(probabilities)
        self.rows = {t: np.asarray(rows[t], dtype=np.int64) for t in self.tasks}
        self.probabilities = np.array([probabilities[t] for t in self.tasks], dtype=float)
        for task, p in zip(self.tasks, self.probabilities, strict=True):
            if p > 0 and len(self.rows[task]) == 0:
                raise ConfigError(f"training.task_sampling: task {task!r} has no annotated row")
        self.batch_size = batch_size
        self.seed = seed
        self._stream = np.zeros(0, dtype=np.int64)
        self._occurrence = np.zeros(0, dtype=np.int64)  # earlier draws of the same task

    @classmethod
    def from_table(
        cls,
        table: pa.Table,
        columns: Mapping[str, str],
        method: str,
        batch_size: int,
        temperature: float = 1.0,
        seed: int = 0,
    ) -> TaskSampler:
        """A sampler over ``table`` (``columns``: task -> the column that marks annotation)."""
        rows = annotated_rows(table, columns)
        probabilities = task_probabilities(
            {t: len(r) for t, r in rows.items()}, method, temperature
        )
        return cls(rows, probabilities, batch_size, seed)

    def _task_indices(self, upto: int) -> np.ndarray:
        """Task indices of steps ``0..upto-1`` (grown in seeded chunks)."""
        while len(self._stream) < upto:
            chunk = len(self._stream) // _CHUNK
            rng = np.random.default_rng([self.seed, 0, chunk])
            draws = rng.choice(len(self.tasks), size=_CHUNK, p=self.probabilities)
            self._stream = np.concatenate([self._stream, draws])
            self._occurrence = np.zeros_like(self._stream)
            for k in range(len(self.tasks)):
                where = self._stream == k
                self._occurrence[where] = np.arange(int(where.sum()))
        return self._stream[:upto]

    def task_at(self, step: int) -> str:
        """The task drawn at ``step``."""
        return self.tasks[int(self._task_indices(step + 1)[step])]

    def _permutation(self, task_index: int, epoch: int) -> np.ndarray:
        rows = self.rows[self.tasks[task_index]]
        return rows[
            np.random.default_rng([self.seed, 1 + task_index, epoch]).permutation(len(rows))
        ]

    def batch_at(self, step: int) -> tuple[str, np.ndarray, int]:
        """``(task, global batch row indices, epoch of that task)`` at ``step``."""
        stream = self._task_indices(step + 1)
        index = int(stream[step])
        draws_before = int(self._occurrence[step])
        n = len(self.rows[self.tasks[index]])
        positions = np.arange(draws_before * self.batch_size, (draws_before + 1) * self.batch_size)
        epochs = positions // n
        batch = np.empty(self.batch_size, dtype=np.int64)
        for epoch in np.unique(epochs):
            where = epochs == epoch
            batch[where] = self._permutation(index, int(epoch))[positions[where] % n]
        return self.tasks[index], batch, int(epochs[0])

    def batches(
        self, start_step: int, rank: int, world: int
    ) -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield ``(epoch, step, this worker's rows)`` from ``start_step`` on, forever.

        Worker ``rank`` of ``world`` takes the ``rank``-th equal slice of the global batch.
        """
        share = max(1, self.batch_size // world)
        step = start_step
        while True:
            _, rows, epoch = self.batch_at(step)
            yield epoch, step, rows[rank * share : (rank + 1) * share]
            step += 1
