"""The MT-AL loop of the paper (Algorithm 1, §5.4 protocol) as a resumable state machine.

Each iteration: train on the labeled set and evaluate on dev/test → score the pool →
select → annotate → update. The last iteration only trains and evaluates (5 iterations =
5 trainings and 4 selections: 2 % → 10 % of the training set, as in the paper). Every step
ends by persisting the state (:mod:`mtal_ray.driver.state`); :meth:`ActiveLearningLoop.run`
starts at the first unfinished step.

The loop talks only to its ports (:mod:`mtal_ray.ports`: a trainer, a pool scorer, an
annotator) and to the selector its config builds; observers (console, MLflow, Prometheus,
a sweep's Tune reports) are callbacks (:mod:`mtal_ray.driver.callbacks`). By default the
ports are the Ray-backed ones (:func:`mtal_ray.driver.wiring.ray_ports`); a unit test passes
in-memory fakes. The class is plain Python: the Ray actor in :mod:`mtal_ray.driver.actor`
only hosts it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from mtal_ray.data import Corpus, load_corpus, make_al_split, make_synthetic_corpus, take_ids
from mtal_ray.data.atomic import remove_stale_temporaries
from mtal_ray.data.lineage import summarize_run_data
from mtal_ray.data.schema import TASK_COLUMNS
from mtal_ray.data.splits import sample_rows
from mtal_ray.data.vocab import label_counts
from mtal_ray.driver.annotation import (
    LABELS_FILE,
    annotated_cost,
    annotation_seconds,
    imported_annotations,
    label_kinds,
    mask_tasks,
    timed_sentences,
    with_dependencies,
)
from mtal_ray.driver.callbacks import (
    CallbackList,
    LoopCallback,
    RunInfo,
    RunOutcome,
    StepReport,
    Summary,
)
from mtal_ray.driver.plots import plot_learning_curve
from mtal_ray.driver.state import (
    LAUNCH_FILE,
    LoopState,
    Step,
    fault_point,
    load_state,
    save_state,
    write_json,
)
from mtal_ray.driver.task_stopping import TaskStopping, task_costs
from mtal_ray.errors import ConfigError, MtalError, SelectionError
from mtal_ray.ports import AnnotationRequest, LoopPorts
from mtal_ray.redact import redact_secrets

if TYPE_CHECKING:
    from mtal_ray.selection.cost import CostModel
    from mtal_ray.selection.cost_fit import FittedCosts

__all__ = [
    "ActiveLearningLoop",
    "AwaitingAnnotation",
    "Summary",
    "config_digest",
    "load_run_data",
]

log = logging.getLogger("mtal_ray.driver")

#: Sections whose change makes an existing run directory a different experiment.
_IDENTITY_SECTIONS = ("seed", "data", "model", "training", "scoring", "selection", "annotation")
#: ``annotation`` keys that may change between launches of one experiment.
_HOW_TO_WAIT = ("wait", "poll_seconds")

#: The step that follows each step (``train`` of the last iteration is followed by ``done``).
NEXT_STEP: dict[Step, Step] = {
    Step.TRAIN: Step.SCORE,
    Step.SCORE: Step.SELECT,
    Step.SELECT: Step.ANNOTATE,
    Step.ANNOTATE: Step.UPDATE,
    Step.UPDATE: Step.TRAIN,
}


class AwaitingAnnotation(MtalError):
    """The loop stopped because a batch waits for human annotation (not a failure)."""


def config_digest(config: dict[str, Any]) -> str:
    """Digest of the sections that define the experiment (not iterations, not tracking)."""
    identity = {k: config.get(k) for k in _IDENTITY_SECTIONS}
    if isinstance(identity.get("annotation"), dict):  # how to wait is not the experiment
        identity["annotation"] = {
            k: v for k, v in identity["annotation"].items() if k not in _HOW_TO_WAIT
        }
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[
        :16
    ]


@dataclass(frozen=True)
class RunData:
    """The corpus of a run, loaded once: the splits the steps read."""

    corpus: Corpus
    tasks: list[str]
    train: pa.Table
    dev_source: pa.Table | None  # None: dev ids are drawn from train
    test: pa.Table | None

    def dev(self, state: LoopState) -> pa.Table:
        """The (capped) dev rows of the run."""
        return take_ids(self.dev_source if self.dev_source is not None else self.train, state.dev)


def load_run_data(cfg: Any, base_dir: Path) -> RunData:
    """The corpus of a run, checked against the config (splits, tasks); a user error
    (unreadable corpus, missing split, task not annotated) raises :class:`MtalError`.

    Also what a sweep runs for each dataset before Ray starts.
    """
    data = cfg.data
    if data.path == "synthetic":
        syn = data.synthetic
        corpus = make_synthetic_corpus(syn.n_train, syn.n_dev, syn.n_test, seed=cfg.seed)
    else:
        corpus = load_corpus(
            data.resolved_path(base_dir),
            data.format,
            strict_bio=data.strict_bio,
            overlapping_entities=data.overlapping_entities,
            columns=data.columns,
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
        corpus.splits[data.train_split] = corpus.splits[data.train_split].slice(0, data.limit_train)
    if data.limit_eval:
        for key in ("dev_split", "test_split"):
            name = getattr(data, key)
            if name is not None:
                # a seeded random sample (file order kept): a split sorted by label
                corpus.splits[name] = sample_rows(corpus.splits[name], data.limit_eval, cfg.seed)
    available = corpus.tasks
    tasks = data.tasks or available
    unknown = [t for t in tasks if t not in available]
    if unknown:
        raise ConfigError(
            f"data.tasks: {', '.join(unknown)} not annotated in {corpus.path} "
            f"(it has: {', '.join(available)})"
        )
    return RunData(
        corpus=corpus,
        tasks=list(tasks),
        train=corpus.splits[data.train_split],
        dev_source=None if data.dev_split is None else corpus.splits[data.dev_split],
        test=None if data.test_split is None else corpus.splits[data.test_split],
    )


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
        Where the default console observer prints (default: the module logger).
    ports
        Trainer, pool scorer and annotator (default: the Ray-backed ones).
    callbacks
        Observers (default: console, MLflow when tracking is enabled, Prometheus).
    """

    def __init__(
        self,
        config: Any,
        run_dir: Path,
        base_dir: Path | None = None,
        echo: Callable[[str], None] | None = None,
        *,
        ports: LoopPorts | None = None,
        callbacks: Sequence[LoopCallback] | None = None,
    ) -> None:
        self.cfg = config
        self.run_dir = Path(run_dir)
        self.base_dir = Path(base_dir) if base_dir else Path.cwd()
        if ports is None:
            from mtal_ray.driver.wiring import ray_ports

            ports = ray_ports(config)
        self.ports = ports
        if callbacks is None:
            from mtal_ray.driver.observers import default_callbacks

            callbacks = default_callbacks(config, self.run_dir, echo)
        self.callbacks = CallbackList(callbacks)
        self.task_stopping = TaskStopping(config, self.run_dir, ports.predictor)
        self._steps: dict[Step, Callable[[RunInfo, RunData], StepReport]] = {
            Step.TRAIN: self._train,
            Step.SCORE: self._score,
            Step.SELECT: self._select,
            Step.ANNOTATE: self._annotate,
            Step.UPDATE: self._update,
        }

    # ------------------------------------------------------------------ data
    def _load_corpus(self) -> RunData:
        return load_run_data(self.cfg, self.base_dir)

    # ----------------------------------------------------------------- state
    def _open(self) -> tuple[RunInfo, RunData]:
        """Load the corpus and the persisted state (or create the initial split)."""
        data = self._load_corpus()
        # Only what the user set: a default added in a later release keeps old runs resumable.
        digest = config_digest(self.cfg.model_dump(mode="json", exclude_defaults=True))
        state = load_state(self.run_dir) if self.run_dir.exists() else None
        iterations = self.cfg.al.iterations
        resumed = state is not None
        if state is None and (self.run_dir / "rounds").exists():
            raise MtalError(
                f"{self.run_dir}: has rounds/ but no state.json (deleted or never written), "
                "so where the run stands is unknown; pass --restart to delete the run "
                "directory and start over, or choose another run directory"
            )
        if state is None:
            split = make_al_split(
                data.train,
                data.dev_source,
                seed=self.cfg.seed,
                initial_fraction=self.cfg.data.initial_fraction,
                initial_count=self.cfg.data.initial_count,
                dev_multiple=self.cfg.data.dev_multiple,
            )
            state = LoopState(
                config_digest=digest,
                stopping_rules=self._stopping_rules(),
                iterations=iterations,
                labeled={t: list(split.labeled) for t in data.tasks},
                initial_size=len(split.labeled),
                excluded=list(split.dev) if split.dev_from_train else [],
                pool_size=len(split.pool),
                dev=list(split.dev),
            )
            self.run_dir.mkdir(parents=True, exist_ok=True)
            # credentials in a URI (tracking.tracking_uri) are not written down
            write_json(
                self.run_dir / "config.json", redact_secrets(self.cfg.model_dump(mode="json"))
            )
            save_state(self.run_dir, state)
        assert state is not None
        notes: list[str] = []
        if resumed:
            cleared = remove_stale_temporaries(self.run_dir)
            if cleared:  # a writer killed mid-write: its temporaries go, its target stays
                notes.append(f"cleared {len(cleared)} temporary file(s) of a killed writer")
            if state.config_digest != digest:
                raise MtalError(
                    f"{self.run_dir} holds a different experiment (its config.json differs in "
                    "data/model/training/scoring/selection/annotation/seed); choose another "
                    "al.run_dir or pass --restart to start it over"
                )
            self._check_stopping_rules(state)
            if state.migrate_pool(data.train):  # a state file that listed the pool
                save_state(self.run_dir, state)
            if iterations != state.iterations:
                # More (or fewer) iterations than before: continue from where it stands.
                notes += self._change_iterations(state, iterations)
                save_state(self.run_dir, state)
            # what the run goes on with (mtal-ray import resumes from it): al, tracking,
            # annotation's waiting may differ from the launch that created the run
            write_json(
                self.run_dir / "config.json", redact_secrets(self.cfg.model_dump(mode="json"))
            )
        write_json(self.run_dir / LAUNCH_FILE, {"base_dir": str(self.base_dir.resolve())})
        if not (self.run_dir / LABELS_FILE).exists():  # a kill may have come before it
            write_json(self.run_dir / LABELS_FILE, self._label_inventory(data))
        run = RunInfo(self.run_dir, self.cfg, data.tasks, state, resumed)
        run.warnings += notes
        line = data.corpus.report_line()
        if line:
            run.warnings.append(line)
        run.params.update(data.corpus.report_params())
        run.datasets = summarize_run_data(data, state, self.cfg.data)
        return run, data

    @staticmethod
    def _change_iterations(state: LoopState, iterations: int) -> list[str]:
        """Set the run's iterations (trainings) to ``iterations`` where it stands; notes for
        the user when it cannot be exactly that."""
        trained = state.iteration + 1  # trainings done or under way
        state.iterations = max(iterations, trained)
        if state.done and trained < state.iterations:
            state.step = Step.SCORE  # more iterations for a finished run
        elif trained >= state.iterations and state.step in (Step.SCORE, Step.SELECT):
            state.step = Step.DONE  # fewer: its last training is done, nothing is selected
            return [f"al.iterations={iterations}: the run had trained {trained} times; it ends"]
        elif trained >= state.iterations and state.step in (Step.ANNOTATE, Step.UPDATE):
            state.iterations = trained + 1  # its selection is out: annotated and trained on
            return [
                f"al.iterations={iterations}: round {state.iteration}'s selection is already "
                f"made, so the run finishes that round ({state.iterations} trainings)"
            ]
        if iterations < trained and state.step == Step.TRAIN:  # annotations in, not trained on
            return [
                f"al.iterations={iterations}: round {state.iteration}'s annotations are in, so "
                f"the run trains on them ({trained} trainings)"
            ]
        if iterations < trained:  # a finished run asked for fewer: nothing to undo
            return [f"al.iterations={iterations}: the run had trained {trained} times; it ends"]
        return []

    def _stopping_rules(self) -> dict[str, Any]:
        """``al.stopping`` as the run records it (what its stopping decisions depend on)."""
        al = self.cfg.al
        return {
            "rules": [rule.resolved() for rule in al.stopping],
            "combine": al.stopping_combine if len(al.stopping) > 1 else "any",
        }

    def _check_stopping_rules(self, state: LoopState) -> None:
        """Refuse to resume with other ``al.stopping`` rules than the run started with."""
        rules = self._stopping_rules()
        if state.stopping_rules is None:  # a state from before the rules were recorded
            state.stopping_rules = rules  # saved with the run's first step
        elif state.stopping_rules != rules:

            def shown(recorded: dict[str, Any]) -> str:
                names = [
                    f"{r['criterion']}({r.get('threshold')})" for r in recorded.get("rules", [])
                ]
                return " + ".join(names) or "none"

            raise MtalError(
                f"{self.run_dir} was started with al.stopping {shown(state.stopping_rules)}, "
                f"not {shown(rules)}: the tasks it stopped (or kept) followed those rules, so "
                "the run cannot change them; launch it with the same al.stopping, or pass "
                "--restart to start it over"
            )

    @staticmethod
    def _label_inventory(data: RunData) -> dict[str, list[str]]:
        """Per task, every label of the training and dev splits (what imports are held to)."""
        splits = [data.train] + ([data.dev_source] if data.dev_source is not None else [])
        return {
            task: sorted({label for table in splits for label in label_counts(table, task)})
            for task in data.tasks
        }

    # ------------------------------------------------------------ the loop
    def run(self) -> Summary:
        """Run every unfinished step; returns the summary (also written to summary.json)."""
        run, data = self._open()
        state = run.state
        self.callbacks.on_run_start(run)
        save_state(self.run_dir, state)  # with the tracking run's id
        try:
            while not state.done:
                step = Step(state.step)
                self.callbacks.on_step_start(run, step)
                iteration = state.iteration
                step_started = time.perf_counter()
                report = self._steps[step](run, data)
                seconds = time.perf_counter() - step_started  # the whole step, as it ran
                state.round(iteration).seconds[f"step.{step.value}"] = seconds
                report.metrics[f"seconds.step.{step.value}"] = seconds
                last = step is Step.TRAIN and iteration + 1 >= state.iterations
                last = last or (step is Step.SELECT and state.ended_early)
                state.step = Step.DONE if last else NEXT_STEP[step]
                if step is Step.UPDATE:
                    state.iteration += 1
                save_state(self.run_dir, state)
                tracking_started = time.perf_counter()
                self.callbacks.on_step_end(run, report)
                # MLflow, Prometheus, console: saved with the next step's state
                spent = state.round(iteration).seconds
                spent["tracking"] = spent.get("tracking", 0.0) + (
                    time.perf_counter() - tracking_started
                )
                if last or step is Step.UPDATE:
                    self.callbacks.on_round_end(run, state.round(iteration))
        except AwaitingAnnotation as waiting:
            summary = Summary(
                str(self.run_dir),
                "awaiting_annotation",
                str(waiting),
                self._rows(state),
                state.mlflow_run_id,
            )
            self.callbacks.on_run_end(run, RunOutcome("awaiting_annotation", summary))
            return summary
        except BaseException as err:
            self.callbacks.on_run_end(run, RunOutcome("failed", error=err))
            raise
        summary, artifacts = self._finish(run)
        self.callbacks.on_run_end(run, RunOutcome("finished", summary, artifacts=artifacts))
        return summary

    def _labeled_table(self, run: RunInfo, data: RunData) -> pa.Table:
        """The training data: every labeled row, each task's columns null where unlabeled."""
        labeled = run.state.labeled
        human = imported_annotations(self.run_dir)
        if human is None:
            return mask_tasks(data.train, labeled, data.tasks)
        human_ids = set(human.column("id").to_pylist())
        from_gold = {t: [i for i in ids if i not in human_ids] for t, ids in labeled.items()}
        from_human = {t: [i for i in ids if i in human_ids] for t, ids in labeled.items()}
        columns = ["id", "tokens"] + [c for t in data.tasks for c in TASK_COLUMNS[t]]
        parts = [
            mask_tasks(data.train, from_gold, data.tasks),
            mask_tasks(human, from_human, data.tasks),
        ]
        parts = [p.select([c for c in columns if c in p.column_names]) for p in parts]
        return pa.concat_tables(parts, promote_options="default")

    def _round_path(self, state: LoopState, name: str) -> Path:
        return self.run_dir / "rounds" / f"round_{state.iteration}" / name

    # ----------------------------------------------------------------- steps
    def _train(self, run: RunInfo, data: RunData) -> StepReport:
        state = run.state
        record = state.round()
        labeled = self._labeled_table(run, data)
        record.n_labeled = {t: len(state.labeled.get(t, [])) for t in data.tasks}
        record.n_labeled["total"] = labeled.num_rows
        started = time.perf_counter()
        result = self.ports.trainer.train(
            labeled,
            data.dev(state),
            data.test,
            data.tasks,
            self.cfg.training_for_round(state.iteration),
            self._round_path(state, "train"),
        )
        record.seconds["train"] = time.perf_counter() - started
        record.checkpoint = result.checkpoint
        record.dev = {k: float(v) for k, v in result.dev_scores.items()}
        record.test = {k: float(v) for k, v in result.test_scores.items()}
        metrics: dict[str, float] = {
            "labeled.total": labeled.num_rows,
            "seconds.train": record.seconds["train"],
            "cost.spent": state.cost_spent,
            "cost.annotated.spent": state.annotated_cost_spent,
        }
        for phase, value in result.phases.items():  # where the training's time went
            record.seconds[f"train.{phase}"] = float(value)
            metrics[f"seconds.train.{phase}"] = float(value)
        for task, n in record.n_labeled.items():
            metrics[f"labeled.{task}"] = n
        gmeans = {"dev": result.dev_gmean, "test": result.test_gmean}  # computed by training
        for split, scores in (("dev", record.dev), ("test", record.test)):
            for task, value in scores.items():
                metrics[f"{split}.{task}"] = value
            if scores and gmeans[split] is not None:
                metrics[f"{split}.geo_mean"] = float(gmeans[split])
        line = f"trained on {labeled.num_rows} sentences in {record.seconds['train']:.0f}s: "
        line += ", ".join(f"dev {t} {v:.4f}" for t, v in record.dev.items())
        if record.test:  # computed with the best checkpoint, so shown as soon as it is
            line += "; " + ", ".join(f"test {t} {v:.4f}" for t, v in record.test.items())
        return StepReport(Step.TRAIN, state.iteration, metrics, lines=[line])

    def _score(self, run: RunInfo, data: RunData) -> StepReport:
        from mtal_ray.scoring.table import SPAN_TASKS, write_unscored_table

        state = run.state
        record = state.round()
        if record.checkpoint is None:
            raise MtalError(f"{self.run_dir}: round {state.iteration} has no trained model")
        pool_started = time.perf_counter()
        pool = state.pool_of(data.train).select(["id", "tokens"])
        record.seconds["score.pool"] = time.perf_counter() - pool_started
        if pool.num_rows == 0:
            raise MtalError("the unlabeled pool is empty: nothing left to select")
        output = self._round_path(state, "confidence.parquet")
        selector = self.cfg.selector_for_round(state.iteration)
        scoring = self.cfg.scoring_for_round(
            state.iteration, tasks=data.tasks, ec_only=not selector.needs_mc_dropout
        )
        fault_point(f"during_score:{state.iteration}", self.run_dir)
        report = StepReport(Step.SCORE, state.iteration)
        report.metrics["seconds.score.pool"] = record.seconds["score.pool"]
        if (  # MT-R / ST-R read no confidence: no model run, the pool's lengths only
            not selector.needs_confidence
            and not self.task_stopping.enabled  # its uncertainty criteria read <task>.ec
            and (self.cfg.selection.budget is None or not set(data.tasks) & set(SPAN_TASKS))
        ):  # (a budget over span tasks needs the entity counts a model predicts)
            write_unscored_table(pool, data.tasks, output)
            record.confidence_table = str(output)
            report.metrics["pool.size"] = pool.num_rows
            report.lines.append(
                f"scoring skipped: {self.cfg.selection.method} reads no confidence "
                f"(pool of {pool.num_rows} sentences, lengths only)"
            )
            return report
        if scoring.calibrate:  # before the clock: seconds.score is the pool's scoring only
            temperatures = self.ports.scorer.calibrate(
                record.checkpoint, data.dev(state), scoring.tasks
            )
            scoring = scoring.updated(temperatures=temperatures)
            report.metrics.update(
                {f"calibration.temperature.{t}": v for t, v in temperatures.items()}
            )
            described = ", ".join(f"T[{t}] = {v:.3f}" for t, v in temperatures.items())
            report.lines.append(f"calibrated on dev: {described}")

        def progress(done: int, total: int, seconds: float) -> None:
            self.callbacks.on_scoring_progress(run, done, total, seconds)
            if done < total:  # tests: kill -9 with scoring half done
                fault_point(f"mid_score:{state.iteration}", self.run_dir)

        started = time.perf_counter()
        phases = self.ports.scorer.score(pool, record.checkpoint, output, scoring, progress)
        seconds = time.perf_counter() - started
        record.seconds["score"] = seconds
        for phase, value in (phases or {}).items():  # where the scoring's time went
            record.seconds[f"score.{phase}"] = float(value)
            report.metrics[f"seconds.score.{phase}"] = float(value)
        record.scoring_rows_per_s = pool.num_rows / seconds if seconds > 0 else None
        record.confidence_table = str(output)
        report.metrics.update(
            {
                "seconds.score": seconds,
                "scoring.rows_per_s": record.scoring_rows_per_s or 0.0,
                "pool.size": pool.num_rows,
            }
        )
        report.lines.append(f"scored {pool.num_rows} pool sentences in {seconds:.1f}s")
        return report

    def _round_size(self, state: LoopState) -> int:
        if self.cfg.selection.n is not None:
            return int(self.cfg.selection.n)
        return max(1, state.initial_size)  # the paper: each round adds the initial size

    def _cost_model(self, state: LoopState) -> tuple[CostModel, FittedCosts | None, str]:
        """The round's cost model: the paper's, or (``selection.cost_model: measured``) the
        paper's formula fitted to the times measured in earlier rounds, with a line that
        says which."""
        from mtal_ray.selection.cost_fit import fit_costs

        sel = self.cfg.selection
        paper = sel.paper_costs()
        if sel.cost_model != "measured":
            return paper, None, ""
        timed = timed_sentences(self.run_dir, range(state.iteration))
        if not timed:
            return paper, None, "cost model: paper costs (no annotation time measured yet)"
        try:
            fit = fit_costs(timed, label_kinds({t for s in timed for t in s.labels}))
            fitted = fit.cost_model(paper)
        except SelectionError as err:
            return paper, None, f"cost model: paper costs ({err})"
        prices = ", ".join(f"{t} {c:.2f}" for t, c in fitted.label_costs.items())
        return fitted, fit, f"{fit.describe()}; per label in words: {prices}"

    def _select(self, run: RunInfo, data: RunData) -> StepReport:
        from mtal_ray.selection import annotation_cost, load_table
        from mtal_ray.selection.uncertainty import with_aggregate

        state = run.state
        record = state.round()
        if record.confidence_table is None:
            raise MtalError(f"{self.run_dir}: round {state.iteration} has no confidence table")
        try:
            confidences = pq.read_table(record.confidence_table)
        except (OSError, pa.ArrowException) as err:
            raise MtalError(
                f"{record.confidence_table}: cannot read the round's confidence table ({err}); "
                "the run directory is damaged: pass --restart to start over"
            ) from None
        sel = self.cfg.selection
        active, stop_metrics, stop_lines = list(data.tasks), {}, []
        # the whole table prices what is asked (a stopped task another one needs included)
        cost_table = table = load_table(confidences, source=record.confidence_table)
        if self.task_stopping.enabled:
            active, stop_metrics, stop_lines = self.task_stopping.judge(
                state, data.tasks, data.train, confidences
            )
            if active and sel.entry.needs_task and sel.task not in active:
                state.stop_reason = f"{sel.method} selects by {sel.task}, which has stopped"
            if not active or state.stop_reason is not None:
                why = state.stop_reason or "every task has stopped"
                return StepReport(
                    Step.SELECT,
                    state.iteration,
                    stop_metrics,
                    lines=[*stop_lines, f"{why}: the run ends here"],
                )
            if len(active) < len(data.tasks):
                table = TaskStopping.restrict(table, active)
                sel = TaskStopping.selection_for(sel, active)
        table = with_aggregate(table, sel.uncertainty)  # mean: the paper's EC, unchanged
        if sel.budget is None and sel.n is not None and sel.n > len(table):
            raise SelectionError(
                f"selection.n={sel.n} is larger than the pool ({len(table)} unlabeled "
                f"sentences left in round {state.iteration}); lower selection.n or al.iterations"
            )
        selector = sel.selector(seed=self.cfg.selection_seed(state.iteration))
        cost_model, cost_fit, cost_line = self._cost_model(state)
        if cost_line:
            stop_lines.append(cost_line)
        started = time.perf_counter()
        result = selector.select(
            table,
            n=None if sel.budget is not None else min(self._round_size(state), len(table)),
            budget=sel.budget,
            cost_model=cost_model,
        )
        seconds = time.perf_counter() - started
        tasks_per_id = {
            sid: with_dependencies(list(result.tasks[sid]) if result.tasks else active)
            for sid in result.ids
        }
        payload = result.to_dict(name=sel.method.lower())
        payload["tasks"] = tasks_per_id
        if cost_fit is not None:
            payload["cost_fit"] = cost_fit.to_dict()
        # a stopped task another active one needs (ner for re) is still annotated, and paid
        asked = {t for ts in tasks_per_id.values() for t in ts}
        needed = sorted(asked & set(data.tasks) - set(active))
        if needed:
            needing = [t for t in active if set(with_dependencies([t])) & set(needed)]
            stop_lines.append(
                f"{', '.join(needed)}: stopped, but still annotated on the sentences selected "
                f"for {', '.join(needing)}, which needs it (paid in the round's cost)"
            )
        if payload.get("cost") is None or needed:
            known = {
                sid: [t for t in ts if t in cost_table.tasks] for sid, ts in tasks_per_id.items()
            }
            try:
                payload["cost"] = annotation_cost(cost_table, known, cost_model)
            except MtalError as err:
                log.warning("annotation cost not computed: %s", err)
                payload["cost"] = None
        if self.task_stopping.enabled:
            for task, cost in task_costs(cost_table, tasks_per_id, cost_model).items():
                record.stopping.setdefault(task, {})["cost"] = cost
        path = self._round_path(state, "selection.json")
        write_json(path, payload)
        record.selection = str(path)
        record.selected = len(result.ids)
        record.seconds["select"] = seconds
        fault_point(f"after_select:{state.iteration}", self.run_dir)
        return StepReport(
            Step.SELECT,
            state.iteration,
            {"seconds.select": seconds, "selected": len(result.ids), **stop_metrics},
            artifacts=[(path, f"rounds/round_{state.iteration}")],
            lines=[
                *stop_lines,
                f"selected {len(result.ids)} sentences with {sel.method} in {seconds:.2f}s",
            ],
        )

    def _selection(self, state: LoopState) -> dict[str, Any]:
        """The persisted selection of the current round (``ids``, ``tasks``, ``cost``...)."""
        path = state.round().selection
        if path is None:
            raise MtalError(f"{self.run_dir}: round {state.iteration} has no selection")
        try:
            payload = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise MtalError(f"{path}: cannot read the round's selection ({err})") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("tasks"), dict):
            raise MtalError(f"{path}: not a selection (no 'tasks' mapping)")
        return payload

    def _annotate(self, run: RunInfo, data: RunData) -> StepReport:
        state = run.state
        tasks_per_id = self._selection(state)["tasks"]
        request = AnnotationRequest(
            run_dir=self.run_dir,
            iteration=state.iteration,
            tasks_per_id=tasks_per_id,
            rows=take_ids(data.train, list(tasks_per_id)),
            checkpoint=state.round().checkpoint,
            corpus_format=data.corpus.format or "slu",
        )
        waiting = self.ports.annotator.annotate(request)
        if waiting is not None:
            raise AwaitingAnnotation(waiting)
        return StepReport(Step.ANNOTATE, state.iteration)

    def _update(self, run: RunInfo, data: RunData) -> StepReport:
        state = run.state
        record = state.round()
        payload = self._selection(state)
        cost = payload.get("cost")
        if cost is not None:
            record.cost = float(cost)
            state.cost_spent += float(cost)
        state.apply_selection(payload["tasks"])
        state.pool_size = state.pool_count(data.train)
        metrics: dict[str, float] = {}
        lines: list[str] = []
        try:  # the work done: the selection priced on the labels it was given
            record.annotated_cost = annotated_cost(
                # the oracle's labels are the corpus's; people's were imported (the
                # training table joins them): only the asked tasks' labels are counted
                data.train
                if imported_annotations(self.run_dir) is None
                else self._labeled_table(run, data),
                payload["tasks"],
                list(data.tasks),
                self.cfg.selection.paper_costs(),
            )
        except MtalError as err:
            log.warning("annotated cost not computed: %s", err)
        else:
            state.annotated_cost_spent += record.annotated_cost
            metrics["cost.annotated"] = record.annotated_cost
            lines.append(f"annotated: cost {record.annotated_cost:g} on the labels given")
        timed = annotation_seconds(self.run_dir, state.iteration)  # measured in a tool
        if timed is None:
            return StepReport(Step.UPDATE, state.iteration, metrics, lines=lines)
        record.annotation_seconds = timed
        per_task = ", ".join(f"{t} {s:.0f}s" for t, s in timed.items() if t != "total")
        metrics.update({f"annotation.seconds.{t}": s for t, s in timed.items()})
        line = f"annotation time {timed['total']:.0f}s ({per_task})"
        fitted = self._fitted_seconds(payload, state.iteration)
        if fitted is not None:
            record.annotation_seconds["fitted"] = fitted
            metrics["annotation.seconds.fitted"] = fitted
            line += f"; the costs fitted before this round predicted {fitted:.0f}s"
        return StepReport(Step.UPDATE, state.iteration, metrics, lines=[*lines, line])

    def _fitted_seconds(self, payload: dict[str, Any], iteration: int) -> float | None:
        """What the cost fit used by this round's selection predicts for the time its
        annotation took (fitted against measured, per round)."""
        from mtal_ray.selection.cost_fit import FittedCosts

        if "cost_fit" not in payload:
            return None
        fit = FittedCosts.from_dict(payload["cost_fit"])
        timed = timed_sentences(self.run_dir, [iteration])
        known = [s for s in timed if set(s.labels) <= set(fit.seconds_per_label)]
        if not known:
            return None
        return float(fit.predict(known).sum())

    # --------------------------------------------------------------- summary
    @staticmethod
    def _rows(state: LoopState) -> list[dict[str, Any]]:
        rows = []
        for r in state.rounds:
            if not r.dev:
                continue
            row: dict[str, Any] = {"iteration": r.iteration, "labeled": r.n_labeled.get("total")}
            row.update({f"dev.{t}": v for t, v in r.dev.items()})
            row.update({f"test.{t}": v for t, v in r.test.items()})
            row["selected"] = r.selected
            row["cost"] = r.cost
            row["cost_annotated"] = r.annotated_cost
            if state.stopping:  # al.stopping: each task's criterion value, and who stopped
                judged = {t: v for t, v in r.stopping.items() if "stopped" in v}
                row.update({f"stop.{t}": judged.get(t, {}).get("value") for t in state.stopping})
                row["stopped"] = ",".join(  # by this round (the last one has no judgement)
                    t
                    for t, e in state.stopping.items()
                    if e.get("stopped_at") is not None and e["stopped_at"] <= r.iteration
                )
            rows.append(row)
        return rows

    def _finish(self, run: RunInfo) -> tuple[Summary, list[tuple[Path, str | None]]]:
        state = run.state
        rows = self._rows(state)
        sizes = [r["labeled"] for r in rows]
        scores = {
            t: {
                s: [r.get(f"{s}.{t}") for r in rows if r.get(f"{s}.{t}") is not None]
                for s in ("dev", "test")
            }
            for t in run.tasks
        }
        scores = {t: {s: v for s, v in d.items() if v} for t, d in scores.items()}
        # where each stopped task stopped: the labeled-set size of that round
        stops = {
            t: state.round(e["stopped_at"]).n_labeled.get("total", 0)
            for t, e in state.stopping.items()
            if e.get("stopped_at") is not None
        }
        curve = plot_learning_curve(
            sizes,
            scores,
            self.run_dir / "learning_curve.png",
            title=f"{self.run_dir.name}: {self.cfg.selection.method}",
            stops=stops,
        )
        status = "stopped" if state.ended_early else "finished"
        message = f"finished {len(rows)} iterations in {self.run_dir}"
        if state.stop_reason is not None:
            message += f" (stopped early: {state.stop_reason})"
        elif status == "stopped":
            message += " (every task stopped early: al.stopping)"
        stopping = {  # with what annotating each task cost over the run
            task: {
                **entry,
                "cost": sum(float(r.stopping.get(task, {}).get("cost", 0.0)) for r in state.rounds),
            }
            for task, entry in state.stopping.items()
        }
        summary = Summary(str(self.run_dir), status, message, rows, state.mlflow_run_id, stopping)
        write_json(self.run_dir / "summary.json", summary.__dict__)
        artifacts: list[tuple[Path, str | None]] = [
            (Path(curve), None),
            (self.run_dir / "summary.json", None),
            (self.run_dir / "config.json", None),
        ]
        for r in state.rounds:
            artifacts.extend(
                (Path(p), f"rounds/round_{r.iteration}")
                for p in (r.confidence_table, r.selection)
                if p
            )
        return summary, artifacts
