"""Per-task stopping in the AL loop: measure each task after scoring, judge, narrow the selection.

Before each selection the loop asks :class:`TaskStopping` which tasks are still annotated
(``al.stopping``; the criteria are the pure rules of :mod:`mtal_ray.stopping`). It measures
what the criteria read for the round's model — κ between this and the previous round's
predictions on a fixed unlabeled stop set (drawn once from the pool, kept in the state),
the pool's mean and max uncertainty (1 − EC) per task, the dev score, the annotation spent
per task — records it in the round and decides. A stopped task stays stopped: later rounds
select only for the active tasks (the confidence table loses the stopped tasks' columns,
so MT methods aggregate over the active tasks, MT-IND/UDJS allocate over them and a BLP's
budget goes to them); training keeps using every annotation gathered.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mtal_ray.data import take_ids
from mtal_ray.data.atomic import atomic_path
from mtal_ray.driver.state import LoopState
from mtal_ray.errors import MtalError
from mtal_ray.ports import Predictor
from mtal_ray.stopping import (
    Decision,
    TaskRound,
    cohen_kappa,
    decide,
    make_criterion,
    prediction_items,
)
from mtal_ray.taskspec import task_spec

if TYPE_CHECKING:
    from mtal_ray.selection.table import ConfidenceTable

STOP_PREDICTIONS = "stop_predictions.parquet"


class TaskStopping:
    """Judges ``al.stopping`` for each task of a run (nothing when it is not configured)."""

    def __init__(self, config: Any, run_dir: Path, predictor: Predictor | None) -> None:
        self.rules = list(config.al.stopping)
        self.combine = config.al.stopping_combine
        self.seed = config.seed
        self.run_dir = Path(run_dir)
        self.predictor = predictor
        self.criteria = [
            make_criterion(r.criterion, r.threshold, r.window, r.unit) for r in self.rules
        ]
        self.per_task = all(r.per_task for r in self.rules)
        self.needs_predictions = any(r.criterion == "stabilizing-predictions" for r in self.rules)

    @property
    def enabled(self) -> bool:
        return bool(self.rules)

    # ------------------------------------------------------------- measuring
    def _stop_set(self, state: LoopState, train: pa.Table) -> list[str]:
        if not state.stop_set:
            size = max(r.stop_set for r in self.rules)
            rng = np.random.default_rng(self.seed)
            pool = state.pool_of(train).column("id")
            chosen = rng.choice(len(pool), size=min(size, len(pool)), replace=False)
            state.stop_set = sorted(pool.take(pa.array(chosen, type=pa.int64())).to_pylist())
        return state.stop_set

    def _predictions(self, state: LoopState, iteration: int, train: pa.Table) -> pa.Table | None:
        path = self.run_dir / "rounds" / f"round_{iteration}" / STOP_PREDICTIONS
        if path.exists():
            table = pq.read_table(path)
            if not state.stop_set:  # killed after the predictions, before the state was saved
                state.stop_set = sorted(table.column("id").to_pylist())
            return table
        if iteration != state.iteration:
            return None  # an earlier round that was not measured
        checkpoint = state.round(iteration).checkpoint
        if self.predictor is None or checkpoint is None:
            raise MtalError(
                "al.stopping: stabilizing-predictions needs the round's model predictions "
                "(no predictor or no trained model)"
            )
        rows = take_ids(train, self._stop_set(state, train)).select(["id", "tokens"])
        predicted = self.predictor.predict(checkpoint, rows)
        if predicted is None:
            raise MtalError("al.stopping: the model gave no predictions on the stop set")
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            pq.write_table(predicted, tmp)
        return predicted

    def _kappa(self, task: str, now: pa.Table, before: pa.Table) -> float:
        spec = task_spec(task)
        columns = [c for c in spec.column_names if c in now.column_names]
        if not columns or any(c not in before.column_names for c in columns):
            raise MtalError(f"al.stopping: the stop-set predictions have no {task} columns")
        ids = now.column("id").to_pylist()
        before = take_ids(before, ids)
        per_word = spec.kind in ("tree", "tagging")
        a = prediction_items(now.select(columns).to_pylist(), columns, per_word)
        b = prediction_items(before.select(columns).to_pylist(), columns, per_word)
        return cohen_kappa(a, b)

    def measure(
        self, state: LoopState, tasks: Sequence[str], train: pa.Table, confidences: pa.Table
    ) -> dict[str, dict[str, float]]:
        """What the criteria read of this round, per task (stored in the round's record)."""
        record = state.round()
        measures: dict[str, dict[str, float]] = {t: {} for t in tasks}
        for task in tasks:
            column = f"{task}.ec"
            if column in confidences.column_names:
                uncertainty = 1.0 - np.asarray(confidences.column(column), dtype=float)
                if uncertainty.size:
                    measures[task]["mean_uncertainty"] = float(uncertainty.mean())
                    measures[task]["max_uncertainty"] = float(uncertainty.max())
        if self.needs_predictions:
            now = self._predictions(state, state.iteration, train)
            before = None
            if state.iteration > 0:
                before = self._predictions(state, state.iteration - 1, train)
            if now is not None and before is not None:
                for task in tasks:
                    measures[task]["kappa"] = self._kappa(task, now, before)
        for task, values in measures.items():
            record.stopping.setdefault(task, {}).update(values)
        return measures

    # --------------------------------------------------------------- judging
    def history(self, state: LoopState, task: str) -> list[TaskRound]:
        """The task's rounds so far, oldest first."""
        rounds, cost = [], 0.0
        for r in state.rounds[: state.iteration + 1]:
            measured = r.stopping.get(task, {})
            rounds.append(
                TaskRound(
                    iteration=r.iteration,
                    dev=r.dev.get(task),
                    kappa=measured.get("kappa"),
                    mean_uncertainty=measured.get("mean_uncertainty"),
                    max_uncertainty=measured.get("max_uncertainty"),
                    cost=cost,
                    sentences=int(r.n_labeled.get(task, 0)),
                )
            )
            cost += float(measured.get("cost", 0.0))
        return rounds

    def judge(
        self, state: LoopState, tasks: Sequence[str], train: pa.Table, confidences: pa.Table
    ) -> tuple[list[str], dict[str, float], list[str]]:
        """Measure, decide and record; returns the active tasks, metrics and progress lines."""
        self.measure(state, tasks, train, confidences)
        decisions: dict[str, Decision] = {
            t: decide(self.criteria, self.history(state, t), self.combine) for t in tasks
        }
        fire = {t: d.stop for t, d in decisions.items()}
        if not self.per_task and not all(fire.values()):
            fire = dict.fromkeys(tasks, False)
        name = "+".join(c.name for c in self.criteria)
        metrics: dict[str, float] = {}
        lines = []
        for task in tasks:
            entry = state.stopping.setdefault(
                task, {"stopped_at": None, "criterion": name, "value": None}
            )
            value = decisions[task].value
            if entry["stopped_at"] is None:
                entry["value"] = value
                if fire[task]:
                    entry["stopped_at"] = state.iteration
            stopped = entry["stopped_at"] is not None
            state.round().stopping.setdefault(task, {}).update({"value": value, "stopped": stopped})
            if value is not None:
                metrics[f"stopping.{task}.value"] = float(value)
            metrics[f"stopping.{task}.stopped"] = float(stopped)
            shown = "–" if value is None else f"{value:.4f}"
            verdict = (
                f"stopped at iteration {entry['stopped_at']}" if stopped else "still annotated"
            )
            lines.append(f"stopping {task}: {name} {shown} — {verdict}")
        active = [t for t in tasks if state.stopping[t]["stopped_at"] is None]
        return active, metrics, lines

    @staticmethod
    def restrict(table: ConfidenceTable, active: Sequence[str]) -> ConfidenceTable:
        """The loaded confidence table without the stopped tasks (their columns dropped;
        ``n_tokens`` and the active tasks' columns stay)."""
        stopped = {t for t in table.tasks if t not in active}
        return dataclasses.replace(
            table,
            tasks=tuple(t for t in table.tasks if t not in stopped),
            columns={
                name: values
                for name, values in table.columns.items()
                if "." not in name or name.split(".", 1)[0] not in stopped
            },
            token_tasks=tuple(t for t in table.token_tasks if t not in stopped),
        )

    @staticmethod
    def selection_for(selection: Any, active: Sequence[str]) -> Any:
        """The ``selection`` section without weights or β on stopped tasks."""
        changes: dict[str, Any] = {}
        if selection.weights:
            kept = {t: w for t, w in selection.weights.items() if t in active}
            changes["weights"] = kept or None
        if selection.task is not None and selection.task not in active:
            changes.update(task=None, beta=None)
        return selection.updated(**changes) if changes else selection


def task_costs(table: Any, tasks_per_id: dict[str, list[str]], cost_model: Any) -> dict[str, float]:
    """The annotation cost of a selection per task (the paper's cost model, §7)."""
    from mtal_ray.selection import annotation_cost

    costs = {}
    for task in table.tasks:
        asked = {sid: [task] for sid, ts in tasks_per_id.items() if task in ts}
        costs[task] = float(annotation_cost(table, asked, cost_model)) if asked else 0.0
    return costs
