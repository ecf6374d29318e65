"""Annotation cost model (paper §7).

Each task's per-sample cost shares a reading term ``m`` (the number of tokens): annotating
a sample on a set S of tasks costs

    cost(S) = Σ_{t∈S} cost_t − (|S| − 1)·m

so ``m`` is paid once. With S = every task this is the paper's JCost = Σ costs − (T−1)·m;
with two tasks it is exactly ``Cost_SF + Cost_ID − m``.

Where the table has no ``<task>.cost`` column, a task's cost comes from a pluggable
function (:attr:`CostModel.task_costs`) or the paper's defaults: a task with a
``<task>.n_entities`` column is token-level, ``Cost = m + tp·n_entities`` (SF), any other
task is sentence-level, ``Cost = m + ts`` (ID). The shared term is
``(Σ_t cost_t − joint.cost)/(T − 1)`` when the table has ``joint.cost`` (so the table's
joint cost is honoured exactly), else ``n_tokens``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from mtal_ray.errors import SelectionError
from mtal_ray.selection.table import ConfidenceTable, load_table

#: A per-task cost function: the table's columns (id order) → costs, shape (n,).
TaskCost = Callable[[Mapping[str, NDArray[np.float64]]], NDArray[np.float64]]


def token_task_cost(
    n_tokens: NDArray[np.float64], n_entities: NDArray[np.float64], tp: float = 1.0
) -> NDArray[np.float64]:
    """Token-level task (SF, NER): ``m + tp·nt``, shape (n,)."""
    return n_tokens + tp * n_entities


def sentence_task_cost(n_tokens: NDArray[np.float64], ts: float = 3.0) -> NDArray[np.float64]:
    """Sentence-level task (ID): ``m + ts``, shape (n,)."""
    return n_tokens + ts


@dataclass(frozen=True)
class CostModel:
    """How much annotating each sample on each task costs.

    Parameters
    ----------
    tp : float
        Per-entity cost of token-level tasks (paper: 1).
    ts : float
        Per-sentence cost of sentence-level tasks (paper: 3).
    task_costs : mapping of str to TaskCost
        Custom cost functions per task, used where the table has no ``<task>.cost``.
    label_costs : mapping of str to float
        Per-label cost of a task, in place of ``tp`` (token-level task) or ``ts``
        (sentence-level task) for that task alone (costs fitted to measured times:
        :mod:`mtal_ray.selection.cost_fit`).
    """

    tp: float = 1.0
    ts: float = 3.0
    task_costs: Mapping[str, TaskCost] = field(default_factory=dict)
    label_costs: Mapping[str, float] = field(default_factory=dict)

    def costs(self, table: ConfidenceTable) -> TaskCosts:
        """Per-task costs and the shared term of every sample of ``table``."""
        if not table.tasks:
            raise SelectionError(
                f"{table.source}: the table names no task, so no annotation cost "
                "(give '<task>.ec' columns or the schema metadata mtal_ray.tasks)"
            )
        per_task = np.column_stack([self._task_cost(table, t) for t in table.tasks])
        n_tasks = len(table.tasks)
        if table.has("joint.cost") and n_tasks > 1:
            shared = (per_task.sum(axis=1) - table.column("joint.cost")) / (n_tasks - 1)
        elif table.has("n_tokens"):
            shared = table.column("n_tokens").copy()
        elif n_tasks == 1:
            shared = np.zeros(table.n)
        else:
            raise SelectionError(
                f"{table.source}: budgeted selection needs 'joint.cost' or 'n_tokens' "
                "to know the cost of annotating a sample on several tasks"
            )
        bad = (per_task <= 0).any(axis=1) | (shared < 0) | (shared > per_task.min(axis=1))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise SelectionError(
                f"{table.source}: inconsistent costs for id {table.ids[row].as_py()!r}: task "
                f"costs {per_task[row].tolist()} must be positive and the joint cost between "
                "the largest task cost and their sum"
            )
        return TaskCosts(tasks=table.tasks, per_task=per_task, shared=shared)

    def _task_cost(self, table: ConfidenceTable, task: str) -> NDArray[np.float64]:
        if table.has(f"{task}.cost"):
            return table.column(f"{task}.cost")
        if task in self.task_costs:
            out = np.asarray(self.task_costs[task](table.columns), dtype=np.float64)
            if out.shape != (table.n,) or not np.isfinite(out).all():
                raise SelectionError(f"cost function of task {task!r} must return n finite costs")
            return out
        if not table.has("n_tokens"):
            raise SelectionError(
                f"{table.source}: no '{task}.cost' column and no 'n_tokens' to compute it from"
            )
        if table.has(f"{task}.n_entities"):
            return token_task_cost(
                table.column("n_tokens"),
                table.column(f"{task}.n_entities"),
                self.label_costs.get(task, self.tp),
            )
        if task in table.token_tasks:
            raise SelectionError(
                f"{table.source}: no '{task}.n_entities' column: the cost of the token-level "
                f"task {task!r} counts the entities a model predicts, and this table was "
                "written without running one"
            )
        return sentence_task_cost(table.column("n_tokens"), self.label_costs.get(task, self.ts))


@dataclass(frozen=True, eq=False)
class TaskCosts:
    """Costs of one table.

    Attributes
    ----------
    tasks : tuple of str
    per_task : ndarray, shape (n, T)
        Cost of annotating each sample on each task alone.
    shared : ndarray, shape (n,)
        The term paid once however many tasks a sample is annotated on (``m``).
    """

    tasks: tuple[str, ...]
    per_task: NDArray[np.float64]
    shared: NDArray[np.float64]

    def task(self, task: str) -> NDArray[np.float64]:
        """Cost of annotating each sample on ``task`` alone, shape (n,)."""
        return self.per_task[:, self.tasks.index(task)]

    @property
    def joint(self) -> NDArray[np.float64]:
        """Cost of annotating each sample on every task, shape (n,)."""
        return self.per_task.sum(axis=1) - (len(self.tasks) - 1) * self.shared

    def subset(self, mask: NDArray[np.bool_]) -> NDArray[np.float64]:
        """Cost of annotating sample i on the tasks where ``mask[i]`` is true.

        Parameters
        ----------
        mask : ndarray of bool, shape (n, T) or (T,)

        Returns
        -------
        ndarray, shape (n,)
            0 where a sample has no task.
        """
        mask = np.broadcast_to(mask, self.per_task.shape)
        k = mask.sum(axis=1)
        return np.where(k > 0, (self.per_task * mask).sum(axis=1) - (k - 1) * self.shared, 0.0)


def annotation_cost(
    table: object,
    tasks_per_id: Mapping[str, Sequence[str]] | Sequence[str],
    cost_model: CostModel | None = None,
) -> float:
    """Total cost of annotating the given ids on the given tasks.

    Parameters
    ----------
    table : ConfidenceTable or anything :func:`load_table` accepts
        Must contain every id.
    tasks_per_id : mapping of id to task names, or a sequence of ids
        A plain sequence means every id on every task.
    cost_model : CostModel, optional

    Returns
    -------
    float
    """
    ct = load_table(table)
    if isinstance(tasks_per_id, Mapping) and not ct.has("joint.cost"):
        # without a joint cost, each task's cost is independent of the others: cost the
        # requested tasks only (a table without confidences cannot cost its span tasks)
        used = {t for ts in tasks_per_id.values() for t in ts}
        for t in used:
            ct.check_task(t)
        if used:
            ct = dataclasses.replace(ct, tasks=tuple(t for t in ct.tasks if t in used))
    costs = (cost_model or CostModel()).costs(ct)
    if isinstance(tasks_per_id, Mapping):
        ids = list(tasks_per_id)
        mask = np.zeros((len(ids), len(ct.tasks)), dtype=bool)
        for i, id_ in enumerate(ids):
            for t in tasks_per_id[id_]:
                ct.check_task(t)
                mask[i, ct.tasks.index(t)] = True
    else:
        ids = list(tasks_per_id)
        mask = np.ones((len(ids), len(ct.tasks)), dtype=bool)
    rows = ct.rows_of(ids)
    sub = TaskCosts(ct.tasks, costs.per_task[rows], costs.shared[rows])
    return float(sub.subset(mask).sum())
