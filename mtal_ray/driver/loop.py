"""The MT-AL loop of the paper (Algorithm 1, §5.4 protocol) as a resumable state machine.

Each iteration: train on the labeled set and evaluate on dev/test → score the pool →
select → annotate → update. The last iteration only trains and evaluates (5 iterations =
5 trainings and 4 selections: 2 % → 10 % of the training set, as in the paper). Every step
ends by persisting the state (:mod:`mtal_ray.driver.state`); :meth:`ActiveLearningLoop.run`
starts at the first unfinished step. The class is plain Python: the Ray actor in
:mod:`mtal_ray.driver.actor` only hosts it, and tests drive it directly.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mtal_ray.data import Corpus, load_corpus, make_al_split, make_synthetic_corpus, take_ids
from mtal_ray.data.schema import TASK_COLUMNS
from mtal_ray.driver.annotation import (
    export_batch,
    imported_annotations,
    mask_tasks,
    round_dir,
    with_dependencies,
)
from mtal_ray.driver.plots import plot_learning_curve
from mtal_ray.driver.state import (
    LAUNCH_FILE,
    LoopState,
    fault_point,
    load_state,
    save_state,
    write_json,
)
from mtal_ray.driver.tracking import Tracker
from mtal_ray.errors import ConfigError, MtalError

log = logging.getLogger("mtal_ray.driver")

#: Sections whose change makes an existing run directory a different experiment.
_IDENTITY_SECTIONS = ("seed", "data", "model", "training", "scoring", "selection", "annotation")


class AwaitingAnnotation(MtalError):
    """The loop stopped because a batch waits for human annotation (not a failure)."""


@dataclass
class Summary:
    """What :meth:`ActiveLearningLoop.run` returns to the launcher."""

    run_dir: str
    status: str  # "finished" | "awaiting_annotation"
    message: str
    rows: list[dict[str, Any]]
    mlflow_run_id: str | None


def config_digest(config: dict[str, Any]) -> str:
    """Digest of the sections that define the experiment (not iterations, not tracking)."""
    identity = {k: config.get(k) for k in _IDENTITY_SECTIONS}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[
        :16
    ]


class ActiveLearningLoop:
    """Runs (or resumes) one AL experiment in ``run_dir``.

    Parameters
    ----------
    config
        The validated :class:`~mtal_ray.config.ExperimentConfig`.
    run_dir
        The run directory (created if needed).
    base_dir
        Folder that relative data paths in the config are resolved against.
    echo
        Where progress lines go (default: the module logger).
    """

    def __init__(
        self,
        config: Any,
        run_dir: Path,
        base_dir: Path | None = None,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        self.cfg = config
        self.run_dir = Path(run_dir)
        self.base_dir = Path(base_dir) if base_dir else Path.cwd()
        self.echo = echo or log.info
        self.raw_config = config.model_dump(mode="json")
        self.tracker = Tracker(
            enabled=config.tracking.enabled,
            tracking_uri=config.tracking.tracking_uri,
            experiment=config.tracking.experiment,
            run_dir=self.run_dir,
            artifact_location=config.tracking.artifact_location,
        )
        from mtal_ray.metrics import ALMetrics

        # One recorder for the whole run: it re-sends the state gauges in the background.
        self.metrics = ALMetrics(config.tracking.experiment)
        self.corpus: Corpus | None = None
        self.tasks: list[str] = []
        self.state: LoopState | None = None

    # ------------------------------------------------------------------ data
    def _load_corpus(self) -> Corpus:
        data = self.cfg.data
        if data.path == "synthetic":
            syn = data.synthetic
            corpus = make_synthetic_corpus(syn.n_train, syn.n_dev, syn.n_test, seed=self.cfg.seed)
        else:
            corpus = load_corpus(
                data.resolved_path(self.base_dir), data.format, strict_bio=data.strict_bio
            )
        if data.train_split not in corpus.splits:
            raise ConfigError(
                f"data.train_split: {corpus.path} has no split {data.train_split!r} "
                f"(available: {', '.join(corpus.splits)})"
            )
        for key in ("dev_split", "test_split"):
            name = getattr(data, key)
            if name is not None and name not in corpus.splits:
                raise ConfigError(
                    f"data.{key}: {corpus.path} has no split {name!r} "
                    f"(available: {', '.join(corpus.splits)}; null = none)"
                )
        if data.limit_train:
            corpus.splits[data.train_split] = corpus.splits[data.train_split].slice(
                0, data.limit_train
            )
        if data.limit_eval:
            for key in ("dev_split", "test_split"):
                name = getattr(data, key)
                if name is not None:
                    corpus.splits[name] = corpus.splits[name].slice(0, data.limit_eval)
        available = corpus.tasks
        tasks = data.tasks or available
        unknown = [t for t in tasks if t not in available]
        if unknown:
            raise ConfigError(
                f"data.tasks: {', '.join(unknown)} not annotated in {corpus.path} "
                f"(it has: {', '.join(available)})"
            )
        self.tasks = list(tasks)
        return corpus

    @property
    def train_table(self) -> pa.Table:
        assert self.corpus is not None
        return self.corpus.splits[self.cfg.data.train_split]

    def _split_table(self, key: str) -> pa.Table | None:
        assert self.corpus is not None
        name = getattr(self.cfg.data, key)
        return None if name is None else self.corpus.splits[name]

    def _dev_table(self) -> pa.Table:
        assert self.state is not None
        source = self._split_table("dev_split")
        if source is None:
            source = self.train_table
        return take_ids(source, self.state.dev)

    # ----------------------------------------------------------------- state
    def prepare(self) -> LoopState:
        """Load the corpus and the persisted state (or create the initial split)."""
        self.corpus = self._load_corpus()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # Only what the user set: a default added in a later release keeps old runs resumable.
        digest = config_digest(self.cfg.model_dump(mode="json", exclude_defaults=True))
        state = load_state(self.run_dir)
        iterations = self.cfg.al.iterations
        if state is None:
            data = self.cfg.data
            split = make_al_split(
                self.train_table,
                self._split_table("dev_split"),
                seed=self.cfg.seed,
                initial_fraction=data.initial_fraction,
                initial_count=data.initial_count,
                dev_multiple=data.dev_multiple,
            )
            state = LoopState(
                config_digest=digest,
                iterations=iterations,
                labeled={t: list(split.labeled) for t in self.tasks},
                initial_size=len(split.labeled),
                pool=list(split.pool),
                dev=list(split.dev),
            )
            write_json(self.run_dir / "config.json", self.raw_config)
            save_state(self.run_dir, state)
            self.echo(
                f"new run {self.run_dir}: {len(split.labeled)} labeled, {len(split.dev)} dev, "
                f"{len(split.pool)} in the pool; tasks {', '.join(self.tasks)}"
            )
        else:
            if state.config_digest != digest:
                raise MtalError(
                    f"{self.run_dir} holds a different experiment (its config.json differs in "
                    "data/model/training/scoring/selection/annotation/seed); choose another "
                    "al.run_dir or pass --restart to start it over"
                )
            if iterations != state.iterations:
                # More (or fewer) iterations than before: continue from where it stands.
                state.iterations = max(iterations, state.iteration + 1)
                if state.step == "done" and state.iteration + 1 < state.iterations:
                    state.step = "score"
                save_state(self.run_dir, state)
            self.echo(f"resuming {self.run_dir} at iteration {state.iteration}, step {state.step}")
        write_json(self.run_dir / LAUNCH_FILE, {"base_dir": str(self.base_dir.resolve())})
        self.state = state
        return state

    def _save(self) -> None:
        assert self.state is not None
        save_state(self.run_dir, self.state)

    # ------------------------------------------------------------ the loop
    def run(self) -> Summary:
        """Run every unfinished step; returns the summary (also written to summary.json)."""
        state = self.prepare()
        state.mlflow_run_id = self.tracker.start(
            state.mlflow_run_id, self.run_dir.name, self.raw_config
        )
        self._save()
        try:
            while not state.done:
                step = state.step
                handler = getattr(self, f"_step_{step}")
                self.echo(f"iteration {state.iteration}/{state.iterations - 1}: {step}")
                handler()
        except AwaitingAnnotation as waiting:
            return Summary(
                str(self.run_dir),
                "awaiting_annotation",
                str(waiting),
                self._rows(),
                state.mlflow_run_id,
            )
        except BaseException:
            self.tracker.finish("FAILED")
            raise
        summary = self._finish()
        self.tracker.finish("FINISHED")
        return summary

    def _labeled_table(self) -> pa.Table:
        """The training data: every labeled row, each task's columns null where unlabeled."""
        assert self.state is not None
        gold = self.train_table
        human = imported_annotations(self.run_dir)
        if human is None:
            return mask_tasks(gold, self.state.labeled, self.tasks)
        human_ids = set(human.column("id").to_pylist())
        from_gold = {
            t: [i for i in ids if i not in human_ids] for t, ids in self.state.labeled.items()
        }
        from_human = {
            t: [i for i in ids if i in human_ids] for t, ids in self.state.labeled.items()
        }
        columns = ["id", "tokens"] + [c for t in self.tasks for c in TASK_COLUMNS[t]]
        parts = [mask_tasks(gold, from_gold, self.tasks), mask_tasks(human, from_human, self.tasks)]
        parts = [p.select([c for c in columns if c in p.column_names]) for p in parts]
        return pa.concat_tables(parts, promote_options="default")

    def _round_path(self, name: str) -> Path:
        assert self.state is not None
        return self.run_dir / "rounds" / f"round_{self.state.iteration}" / name

    def _step_train(self) -> None:
        from mtal_ray.training import train_model

        state = self.state
        assert state is not None
        record = state.round()
        labeled = self._labeled_table()
        record.n_labeled = {t: len(state.labeled.get(t, [])) for t in self.tasks}
        record.n_labeled["total"] = labeled.num_rows
        self.metrics.record_iteration(
            state.iteration,
            labeled={t: n for t, n in record.n_labeled.items() if t != "total"},
            pool_size=len(state.pool),
        )
        test = self._split_table("test_split")
        started = time.perf_counter()
        result = train_model(
            labeled,
            self._dev_table(),
            self.tasks,
            self.cfg.model,
            self.cfg.training.model_copy(update={"seed": self.cfg.seed + state.iteration}),
            self._round_path("train"),
            test=test,
        )
        record.seconds["train"] = time.perf_counter() - started
        record.checkpoint = str(result.checkpoint_dir)
        record.dev = {k: float(v) for k, v in result.dev_scores.items()}
        record.test = {k: float(v) for k, v in (result.test_scores or {}).items()}
        metrics: dict[str, float] = {
            "labeled.total": labeled.num_rows,
            "seconds.train": record.seconds["train"],
            "cost.spent": state.cost_spent,
        }
        for task, n in record.n_labeled.items():
            metrics[f"labeled.{task}"] = n
        gmeans = {"dev": result.dev_gmean, "test": result.test_gmean}  # computed by training
        for split, scores in (("dev", record.dev), ("test", record.test)):
            for task, value in scores.items():
                metrics[f"{split}.{task}"] = value
            if scores and gmeans[split] is not None:
                metrics[f"{split}.geo_mean"] = float(gmeans[split])
        self.tracker.log_metrics(metrics, step=state.iteration)
        self.metrics.record_dev_scores({t: {"main": v} for t, v in record.dev.items()})
        self.echo(
            f"  trained on {labeled.num_rows} sentences in {record.seconds['train']:.0f}s: "
            + ", ".join(f"dev {t} {v:.4f}" for t, v in record.dev.items())
        )
        last = state.iteration + 1 >= state.iterations
        state.step = "done" if last else "score"
        self._save()

    def _scoring_progress(self, done: int, total: int, seconds: float) -> None:
        from mtal_ray.scoring.pool import scoring_progress_text

        self.echo(f"  {scoring_progress_text(done, total, seconds)}")
        if done < total and self.state is not None:  # tests: kill -9 with scoring half done
            fault_point(f"mid_score:{self.state.iteration}", self.run_dir)

    def _calibrate(self, record: Any) -> dict[str, float]:
        """Temperature scaling: one temperature per task fitted on dev for this model."""
        from mtal_ray.scoring.calibration import calibrate_checkpoint, describe_temperatures

        temperatures = calibrate_checkpoint(
            record.checkpoint, self._dev_table(), self.cfg.scoring.tasks
        )
        self.tracker.log_metrics(
            {f"calibration.temperature.{t}": v for t, v in temperatures.items()},
            step=self.state.iteration if self.state else 0,
        )
        self.echo(f"  calibrated on dev: {describe_temperatures(temperatures)}")
        return temperatures

    def _step_score(self) -> None:
        from mtal_ray.scoring.pool import score_pool_to_file

        state = self.state
        assert state is not None
        record = state.round()
        if not state.pool:
            raise MtalError("the unlabeled pool is empty: nothing left to select")
        pool = take_ids(self.train_table, state.pool).select(["id", "tokens"])
        output = self._round_path("confidence.parquet")
        scoring = self.cfg.scoring.model_copy(
            update={
                "seed": self.cfg.seed * 1000 + state.iteration,
                "ec_only": self.cfg.scoring.ec_only or not self._needs_da(),
                "tasks": self.cfg.scoring.tasks or self.tasks,
            }
        )
        fault_point(f"during_score:{state.iteration}", self.run_dir)
        if scoring.calibrate:  # before the clock: seconds.score is the pool's scoring only
            scoring = scoring.model_copy(update={"temperatures": self._calibrate(record)})
        started = time.perf_counter()
        score_pool_to_file(
            pool,
            record.checkpoint,
            output,
            scoring,
            experiment=self.cfg.tracking.experiment,
            progress=self._scoring_progress,
        )
        seconds = time.perf_counter() - started
        record.seconds["score"] = seconds
        record.scoring_rows_per_s = pool.num_rows / seconds if seconds > 0 else None
        record.confidence_table = str(output)
        self.tracker.log_metrics(
            {
                "seconds.score": seconds,
                "scoring.rows_per_s": record.scoring_rows_per_s or 0.0,
                "pool.size": pool.num_rows,
            },
            step=state.iteration,
        )
        self.echo(f"  scored {pool.num_rows} pool sentences in {seconds:.1f}s")
        state.step = "select"
        self._save()

    def _needs_da(self) -> bool:
        method = self.cfg.selection.method
        return method in ("st-da", "mt-da", "mt-avgda")

    def _round_size(self) -> int:
        assert self.state is not None
        if self.cfg.selection.n is not None:
            return int(self.cfg.selection.n)
        return max(1, self.state.initial_size)  # the paper: each round adds the initial size

    def _step_select(self) -> None:
        from mtal_ray.selection import select

        state = self.state
        assert state is not None
        record = state.round()
        assert record.confidence_table is not None
        table = pq.read_table(record.confidence_table)
        sel = self.cfg.selection
        budget = sel.budget
        started = time.perf_counter()
        result = select(
            table,
            sel.method,
            n=None if budget is not None else min(self._round_size(), table.num_rows),
            budget=budget,
            weights=sel.weights,
            beta=sel.beta,
            task=sel.task,
            seed=self.cfg.seed + state.iteration,
            time_limit=sel.time_limit if sel.method.lower().startswith("blp-") else None,
            cost_model=sel.cost_model(),
        )
        seconds = time.perf_counter() - started
        self.metrics.record_selection(sel.method, seconds)
        tasks_per_id = {
            sid: with_dependencies(list(result.tasks[sid]) if result.tasks else self.tasks)
            for sid in result.ids
        }
        payload = result.to_dict(name=sel.method.lower())
        payload["tasks"] = tasks_per_id
        if payload.get("cost") is None:
            payload["cost"] = self._annotation_cost(table, tasks_per_id)
        path = self._round_path("selection.json")
        write_json(path, payload)
        record.selection = str(path)
        record.selected = len(result.ids)
        record.seconds["select"] = seconds
        self.tracker.log_metrics(
            {"seconds.select": seconds, "selected": len(result.ids)}, step=state.iteration
        )
        self.tracker.log_artifact(path, f"rounds/round_{state.iteration}")
        self.echo(f"  selected {len(result.ids)} sentences with {sel.method} in {seconds:.2f}s")
        fault_point(f"after_select:{state.iteration}", self.run_dir)
        state.step = "annotate"
        self._save()

    def _annotation_cost(self, table: pa.Table, tasks_per_id: dict[str, list[str]]) -> float | None:
        """Cost of the selection under the paper's cost model (§7), for the record."""
        from mtal_ray.selection import annotation_cost

        scored = {c.removesuffix(".ec") for c in table.column_names if c.endswith(".ec")}
        known = {sid: [t for t in ts if t in scored] for sid, ts in tasks_per_id.items()}
        try:
            return annotation_cost(table, known, self.cfg.selection.cost_model())
        except MtalError as err:
            log.warning("annotation cost not computed: %s", err)
            return None

    def _selection(self) -> dict[str, Any]:
        """The persisted selection of the current round (``ids``, ``tasks``, ``cost``...)."""
        assert self.state is not None
        record = self.state.round()
        assert record.selection is not None
        return json.loads(Path(record.selection).read_text(encoding="utf-8"))

    def _step_annotate(self) -> None:
        state = self.state
        assert state is not None
        if self.cfg.annotation.mode == "oracle":
            state.step = "update"
            self._save()
            return
        folder = round_dir(self.run_dir, state.iteration)
        if (folder / "imported.parquet").exists():
            state.step = "update"
            self._save()
            return
        tasks_per_id = self._selection()["tasks"]
        if not (folder / "manifest.json").exists():
            predictions = self._predictions(list(tasks_per_id))
            fmt = self.corpus.format if self.corpus else "slu"
            export_batch(
                self.run_dir, state.iteration, self.train_table, tasks_per_id, predictions, fmt
            )
        raise AwaitingAnnotation(
            f"round {state.iteration}: {len(tasks_per_id)} sentences wait for annotation in "
            f"{folder}/ (model predictions pre-filled). Correct them, then run: "
            f"mtal-ray import {self.run_dir} <files>  (it validates them and resumes the run)."
        )

    def _predictions(self, ids: list[str]) -> pa.Table | None:
        from mtal_ray.models.inference import predict
        from mtal_ray.training import load_checkpoint

        assert self.state is not None
        checkpoint = self.state.round().checkpoint
        if checkpoint is None:
            return None
        model, collator, _ = load_checkpoint(checkpoint)
        return predict(model, collator, take_ids(self.train_table, ids))

    def _step_update(self) -> None:
        state = self.state
        assert state is not None
        record = state.round()
        payload = self._selection()
        tasks_per_id = payload["tasks"]
        cost = payload.get("cost")
        if cost is not None:
            record.cost = float(cost)
            state.cost_spent += float(cost)
        state.apply_selection(tasks_per_id)
        self.metrics.record_annotation_cost(state.cost_spent, self.cfg.selection.budget)
        state.iteration += 1
        state.step = "train"
        self._save()

    # --------------------------------------------------------------- summary
    def _rows(self) -> list[dict[str, Any]]:
        assert self.state is not None
        rows = []
        for r in self.state.rounds:
            if not r.dev:
                continue
            row: dict[str, Any] = {"iteration": r.iteration, "labeled": r.n_labeled.get("total")}
            row.update({f"dev.{t}": v for t, v in r.dev.items()})
            row.update({f"test.{t}": v for t, v in r.test.items()})
            row["selected"] = r.selected
            row["cost"] = r.cost
            rows.append(row)
        return rows

    def _finish(self) -> Summary:
        assert self.state is not None
        rows = self._rows()
        sizes = [r["labeled"] for r in rows]
        scores = {
            t: {
                s: [r.get(f"{s}.{t}") for r in rows if r.get(f"{s}.{t}") is not None]
                for s in ("dev", "test")
            }
            for t in self.tasks
        }
        scores = {t: {s: v for s, v in d.items() if v} for t, d in scores.items()}
        curve = plot_learning_curve(
            sizes,
            scores,
            self.run_dir / "learning_curve.png",
            title=f"{self.run_dir.name}: {self.cfg.selection.method}",
        )
        summary = Summary(
            str(self.run_dir),
            "finished",
            f"finished {len(rows)} iterations in {self.run_dir}",
            rows,
            self.state.mlflow_run_id,
        )
        write_json(self.run_dir / "summary.json", summary.__dict__)
        for path in (curve, self.run_dir / "summary.json", self.run_dir / "config.json"):
            self.tracker.log_artifact(path)
        for r in self.state.rounds:
            for path in (r.confidence_table, r.selection):
                if path:
                    self.tracker.log_artifact(Path(path), f"rounds/round_{r.iteration}")
        return summary
