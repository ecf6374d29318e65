"""The loop's standard observers: console progress, MLflow tracking, Prometheus metrics.

Each is one :class:`~mtal_ray.driver.callbacks.LoopCallback`; :func:`default_callbacks`
composes them from an experiment config. A sweep adds its own (Tune reports) beside them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mtal_ray.driver.callbacks import LoopCallback, RunInfo, RunOutcome, StepReport
from mtal_ray.driver.state import Step
from mtal_ray.mlflow_tracking import (
    RUN_KEY_TAG,
    MlflowTarget,
    find_run,
    has_datasets,
    log_artifacts,
    log_datasets,
    log_metrics,
    log_table,
    run_exists,
    set_status,
    source_tags,
    start_run,
)
from mtal_ray.redact import redact_uri

log = logging.getLogger("mtal_ray.driver")

Echo = Callable[[str], None]


class ConsoleCallback(LoopCallback):
    """One line per step, the step's result lines, and scoring progress."""

    def __init__(self, echo: Echo | None = None, prefix: str = "") -> None:
        self.echo = echo or log.info
        self.prefix = prefix

    def _say(self, line: str) -> None:
        self.echo(f"{self.prefix}{line}")

    def on_run_start(self, run: RunInfo) -> None:
        state = run.state
        if run.resumed:
            self._say(_resume_line(run))
        else:
            self._say(
                f"new run {run.run_dir}: {len(state.labeled_ids())} labeled, {len(state.dev)} "
                f"dev, {state.pool_size} in the pool; tasks {', '.join(run.tasks)}"
            )
        for line in run.warnings:
            self._say(f"warning: {line}")

    def on_step_start(self, run: RunInfo, step: Step) -> None:
        state = run.state
        self._say(f"iteration {state.iteration}/{state.iterations - 1}: {step}")

    def on_scoring_progress(self, run: RunInfo, done: int, total: int, seconds: float) -> None:
        rate = done / max(seconds, 1e-9)
        self._say(f"  scoring: {done}/{total} sentences ({rate:.1f}/s)")

    def on_step_end(self, run: RunInfo, report: StepReport) -> None:
        for line in report.lines:
            self._say(f"  {line}")


def _resume_line(run: RunInfo) -> str:
    """What a relaunch continues from, in words (a new run says ``new run``)."""
    state = run.state
    sizes = f"{len(state.labeled_ids())} labeled, {state.pool_size} in the pool"
    if state.done:
        return f"run {run.run_dir} already finished ({state.iterations} iterations); {sizes}"
    started = any(r.checkpoint or r.dev or r.seconds for r in state.rounds)
    if state.iteration == 0 and state.step == Step.TRAIN and not started:
        return (
            f"restarting {run.run_dir} from its first step (an earlier launch created it but "
            f"finished no step): {sizes}"
        )
    steps = list(Step)[:-1]  # train … update
    index = steps.index(Step(state.step))
    if index > 0:
        after = f"iteration {state.iteration} {steps[index - 1]} done"
    else:
        after = f"iteration {state.iteration - 1} done"
    return (
        f"resuming {run.run_dir} at iteration {state.iteration}/{state.iterations - 1}, "
        f"step {state.step} ({after}); {sizes}"
    )


class MlflowCallback(LoopCallback):
    """One MLflow run per experiment: params, per-iteration metrics, artifacts, status.

    The run id is kept in the loop state, so a resumed experiment logs into the same run.
    ``run_name``, ``tags`` and ``parent_run_id`` serve sweeps (a trial's run is a child of
    the sweep's run); a plain experiment's run is named after its directory.
    """

    def __init__(
        self,
        target: MlflowTarget,
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
        parent_run_id: str | None = None,
    ) -> None:
        self.target = target
        self.run_name = run_name
        self.tags = dict(tags or {})
        self.parent_run_id = parent_run_id
        self.run_id: str | None = None

    def on_run_start(self, run: RunInfo) -> None:
        known = run.state.mlflow_run_id
        if known is not None and self.target.enabled and not run_exists(self.target, known):
            # the store was moved, deleted or changed (tracking.tracking_uri): a new run
            log.warning(
                "MLflow run %s of %s is not in %s (experiment %s): logging to a new run",
                known,
                run.run_dir,
                redact_uri(self.target.tracking_uri),
                self.target.experiment,
            )
            known = None
        # killed between creating its run and saving the run's id: the same run again
        orphan = None if known is not None else find_run(self.target, run.state.run_key)
        self.run_id = start_run(
            self.target,
            known or orphan,
            self.run_name or run.run_dir.name,
            {**run.config.model_dump(mode="json"), **run.params},
            {**source_tags(), **self.tags, RUN_KEY_TAG: run.state.run_key},
            parent_id=self.parent_run_id,
        )
        if self.run_id is not None:
            run.state.mlflow_run_id = self.run_id
            # a reopened run has its splits already (an orphan may have been cut short)
            if known is None and (orphan is None or not has_datasets(self.target, orphan)):
                log_datasets(self.target, self.run_id, [(d, d.context) for d in run.datasets])

    def on_step_end(self, run: RunInfo, report: StepReport) -> None:
        if report.metrics:
            log_metrics(self.target, self.run_id, report.metrics, step=report.iteration)
        for path, folder in report.artifacts:
            log_artifacts(self.target, self.run_id, [path], folder)
        if self.run_id is None:
            return
        if report.step == Step.TRAIN:
            self._log_labeled_set(run, report.iteration)
            last = report.iteration + 1 >= run.state.iterations
            if run.config.tracking.log_models == "rounds" and not last:
                self._log_model(run, report.iteration, f"round_{report.iteration}")
        elif report.step == Step.SELECT:
            self._log_round_tables(run, report.iteration)

    def on_run_end(self, run: RunInfo, outcome: RunOutcome) -> None:
        if outcome.status == "awaiting_annotation":
            return  # the run goes on after the import
        for path, folder in outcome.artifacts:
            log_artifacts(self.target, self.run_id, [path], folder)
        tracking = run.config.tracking
        if outcome.status == "finished" and tracking.log_models != "none" and run.state.rounds:
            self._log_model(
                run, run.state.rounds[-1].iteration, "model", registered=tracking.register_model
            )
        status = "FAILED" if outcome.status == "failed" else "FINISHED"
        set_status(self.target, self.run_id, status)

    # ------------------------------------------------------------ lineage
    def _log_labeled_set(self, run: RunInfo, iteration: int) -> None:
        """The labeled set a round trained on, as a dataset input (context ``labeled``)."""
        from mtal_ray.data.lineage import LabeledSet, labeled_summary

        corpus = run.datasets[0].name.split("/")[0] if run.datasets else run.run_dir.name
        labeled = LabeledSet(
            name=f"{corpus}/labeled-round-{iteration}",
            source=str(run.run_dir / "state.json"),
            summary={"round": iteration, **labeled_summary(run.state.labeled)},
        )
        log_datasets(self.target, self.run_id, [(labeled, "labeled")])

    def _log_round_tables(self, run: RunInfo, iteration: int) -> None:
        """The round's confidence summary per task and its selection, as MLflow tables."""
        from mtal_ray.driver.round_tables import confidence_summary, selection_rows

        record = run.state.round(iteration)
        if record.confidence_table is None or not Path(record.confidence_table).exists():
            return
        folder = f"rounds/round_{iteration}"
        log_table(
            self.target,
            self.run_id,
            confidence_summary(record.confidence_table, record.selection),
            f"{folder}/confidence_summary.json",
        )
        if record.selection is not None:
            log_table(
                self.target,
                self.run_id,
                selection_rows(record.confidence_table, record.selection),
                f"{folder}/selection_table.json",
            )

    def _log_model(
        self, run: RunInfo, iteration: int, name: str, registered: str | None = None
    ) -> None:
        """Log the round's exported model as an MLflow pyfunc model (see
        :mod:`mtal_ray.mlflow_model`); a failure is logged, not raised: the run's results
        are safe in the run directory whatever happens to the tracking store."""
        checkpoint = run.state.round(iteration).checkpoint
        if checkpoint is None or self.run_id is None:
            return
        examples = next((d.examples for d in run.datasets if d.context == "test"), None)
        examples = examples or next((d.examples for d in run.datasets if d.examples), [])
        try:
            from mtal_ray.mlflow_model import log_checkpoint_model, logged_model_id

            if logged_model_id(self.target.tracking_uri, self.run_id, name, iteration):
                return  # logged by an earlier launch of this run
            info = log_checkpoint_model(
                self.target.tracking_uri,
                self.run_id,
                checkpoint,
                name=name,
                examples=examples,
                step=iteration,
                registered_name=registered,
                tags={"mtal.round": str(iteration), "mtal.run_dir": str(run.run_dir)},
            )
            log.info("logged the %s model of round %d: %s", name, iteration, info.model_uri)
        except Exception as err:  # tracking must not fail a finished run
            log.warning("could not log model %s of round %d to MLflow: %s", name, iteration, err)


class PrometheusCallback(LoopCallback):
    """The ``mtal_`` Ray metrics of :mod:`mtal_ray.prometheus` (one recorder per run)."""

    def __init__(self, experiment: str, method: str, budget: float | None) -> None:
        from mtal_ray.prometheus import ALMetrics

        # One recorder for the whole run: it re-sends the state gauges in the background.
        self.metrics = ALMetrics(experiment)
        self.method = method
        self.budget = budget

    def on_step_start(self, run: RunInfo, step: Step) -> None:
        if step == Step.TRAIN:
            state = run.state
            self.metrics.record_iteration(
                state.iteration,
                labeled={t: len(state.labeled.get(t, [])) for t in run.tasks},
                pool_size=state.pool_size,
            )

    def on_step_end(self, run: RunInfo, report: StepReport) -> None:
        state = run.state
        if report.step == Step.TRAIN:
            record = state.round(report.iteration)
            self.metrics.record_dev_scores({t: {"main": v} for t, v in record.dev.items()})
        elif report.step == Step.SELECT:
            if "seconds.select" in report.metrics:  # not when every task has stopped
                self.metrics.record_selection(self.method, report.metrics["seconds.select"])
        elif report.step == Step.UPDATE:
            self.metrics.record_annotation_cost(
                state.cost_spent, self.budget, given=state.annotated_cost_spent
            )


def default_callbacks(config: Any, run_dir: Path, echo: Echo | None = None) -> list[LoopCallback]:
    """Console progress, MLflow (when ``tracking.enabled``) and Prometheus metrics."""
    callbacks: list[LoopCallback] = [ConsoleCallback(echo)]
    if config.tracking.enabled:
        callbacks.append(MlflowCallback(MlflowTarget.for_run(config.tracking, run_dir)))
    callbacks.append(
        PrometheusCallback(
            config.tracking.experiment, config.selection.method, config.selection.budget
        )
    )
    return callbacks
