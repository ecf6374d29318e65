"""One sweep trial: a complete AL experiment, run by the driver's loop inside a Tune trial.

:func:`run_trial` is plain Python (tests call it without Tune): it resolves the trial's
config (base config + dataset overrides + parameters), runs or resumes
:class:`~mtal_ray.driver.loop.ActiveLearningLoop` in ``SWEEP_DIR/trials/<name>`` (training
happens there through Ray Train), keeps ``trial.json`` up to date and reports each
evaluated iteration to Tune — as observers of the loop (:class:`TrialCallback`, MLflow,
console): the trial never touches the loop's state or files. The loop's own resume makes a
restarted trial continue where it stopped; a trial already recorded as finished returns at
once.
"""

from __future__ import annotations

import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtal_ray.config import validate
from mtal_ray.driver.callbacks import LoopCallback, RunInfo, StepReport
from mtal_ray.driver.state import RoundRecord, Step
from mtal_ray.errors import ConfigError, MtalError
from mtal_ray.mlflow_tracking import MlflowTarget, set_status, start_run
from mtal_ray.sweep.config import BETA_KEY, DATASET_KEY
from mtal_ray.sweep.results import TRIALS_DIR, TrialRecord, load_trial
from mtal_ray.sweep.space import trial_name, trial_params, trial_raw_config

Reporter = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class TrialContext:
    """Everything a trial needs besides its parameters (picklable; same for all trials)."""

    sweep_name: str
    sweep_dir: str
    base_raw: dict[str, Any]
    datasets: dict[str, dict[str, Any]]
    base_dir: str
    target: MlflowTarget
    parent_run_id: str | None
    config_model: type
    random_keys: frozenset[str] = field(default_factory=frozenset)
    #: ``sweep.retry_failed``: whether a trial recorded as failed runs again.
    retry_failed: bool = True
    #: This ``mtal-ray sweep`` invocation's id: a trial that failed in it may be retried
    #: by Tune (``sweep.max_failures``) whatever ``retry_failed`` says.
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def trial_dir(self, name: str) -> Path:
        """``SWEEP_DIR/trials/<name>``."""
        return Path(self.sweep_dir) / TRIALS_DIR / name


def trial_config(params: Mapping[str, Any], context: TrialContext) -> Any:
    """The validated experiment config of a trial, logging into the sweep's MLflow store."""
    raw = trial_raw_config(context.base_raw, params, context.datasets)
    tracking = dict(raw.get("tracking") or {})
    tracking.update(
        tracking_uri=context.target.tracking_uri,
        experiment=context.target.experiment,
        artifact_location=context.target.artifact_location,
        enabled=context.target.enabled,
    )
    raw["tracking"] = tracking
    try:
        return validate(context.config_model, raw)
    except ConfigError as err:
        name = trial_name(params, context.random_keys)
        raise ConfigError(f"sweep trial {name}: {err}") from None


def _section_value(config: Any, section: str, key: str) -> Any:
    return getattr(getattr(config, section, None), key, None)


def _row_metrics(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def _prefixed(name: str) -> Callable[[str], None]:
    def echo(line: str) -> None:
        print(f"[{name}] {line}", flush=True)

    return echo


class TrialCallback(LoopCallback):
    """A sweep trial's observer: keeps ``trial.json`` current and reports rounds to Tune.

    Each evaluated round is reported once per attempt, as soon as its model is evaluated
    (a restarted trial first reports the rounds it already has, as Tune expects of a fresh
    function trainable).
    """

    def __init__(
        self,
        record: TrialRecord,
        trial_dir: Path,
        report: Reporter | None,
        seconds: Callable[[], float] | None = None,
    ) -> None:
        self.record = record
        self.trial_dir = trial_dir
        self.report = report
        #: the trial's wall time so far (all attempts), saved after every step
        self.seconds = seconds
        self.reported: set[int] = set()

    def _report(self, record: RoundRecord, last: bool) -> None:
        if self.report is None or not record.dev or record.iteration in self.reported:
            return
        self.reported.add(record.iteration)
        metrics = {f"dev.{t}": v for t, v in record.dev.items()}
        metrics.update({f"test.{t}": v for t, v in record.test.items()})
        result = {"iteration": record.iteration, "labeled": record.n_labeled.get("total", 0)}
        # never ``done`` here: Tune stops a function trainable at a ``done`` report, before
        # the loop writes summary.json and run_trial records the trial as finished
        del last
        self.report({**result, **metrics})

    def on_run_start(self, run: RunInfo) -> None:
        self.record.tasks = list(run.tasks)
        self.record.mlflow_run_id = run.state.mlflow_run_id
        self.record.save(self.trial_dir)
        for r in run.state.rounds:
            self._report(r, last=run.state.done and r.iteration + 1 >= run.state.iterations)

    def on_step_end(self, run: RunInfo, report: StepReport) -> None:
        if self.seconds is not None:  # a killed attempt keeps the time up to here
            self.record.seconds = self.seconds()
            self.record.save(self.trial_dir)
        if report.step == Step.TRAIN:
            last = report.iteration + 1 >= run.state.iterations
            self._report(run.state.round(report.iteration), last=last)


class TrialFailedBefore(RuntimeError):
    """A trial recorded as failed, not run again (``sweep.retry_failed: false``). Not a
    :class:`~mtal_ray.errors.MtalError`: Tune marks it errored and the sweep goes on."""


def run_trial(
    params: Mapping[str, Any], context: TrialContext, report: Reporter | None = None
) -> dict[str, Any]:
    """Run (or resume) one trial; returns its final metrics.

    Raises the trial's error after recording it (``trial.json`` status ``failed``, MLflow
    child run ``FAILED``), so Tune marks the trial errored and goes on with the others.
    """
    params = dict(params)
    name = trial_name(params, context.random_keys)
    trial_dir = context.trial_dir(name)
    done = load_trial(trial_dir)
    if done is not None and done.record.status == "finished" and done.rows:
        # one Tune result per AL iteration, as the trial's first run reported them
        last = len(done.rows) - 1
        final = {"iteration": last, **_row_metrics(done.rows[-1]), "done": True}
        if report is not None:
            for i, row in enumerate(done.rows[:-1]):
                report({"iteration": i, **_row_metrics(row)})
            report(final)
        return final
    failed_before = (
        done is not None
        and done.record.status == "failed"
        and done.record.failed_run != context.run_id  # Tune's own retries go ahead
    )
    if failed_before and not context.retry_failed:
        # a new Tune experiment (another limit of trials at once) keeps failures failed
        assert done is not None
        reason = (done.record.error or "").strip().splitlines()[:1]
        raise TrialFailedBefore(
            f"trial {name} failed in an earlier run and sweep.retry_failed is false"
            + (f": {reason[0]}" if reason else "")
        )
    record = done.record if done is not None else TrialRecord(name=name, params=params)
    record.params = params
    record.dataset = params.get(DATASET_KEY)
    record.attempts += 1
    record.status, record.error = "running", None
    record.save(trial_dir)
    started = time.perf_counter()
    seconds_before = record.seconds
    try:
        from mtal_ray.driver.loop import ActiveLearningLoop
        from mtal_ray.driver.observers import MlflowCallback, default_callbacks

        config = trial_config(params, context)
        record.method = _section_value(config, "selection", "method")
        beta = params.get(BETA_KEY, _section_value(config, "selection", "beta"))
        record.beta = float(beta) if isinstance(beta, int | float) else None
        record.seed = int(getattr(config, "seed", 0))
        record.save(trial_dir)
        tags = {
            "sweep.name": context.sweep_name,
            "sweep.trial": name,
            "sweep.status": "running",
            **{f"sweep.param.{k}": str(v) for k, v in params.items()},
        }
        callbacks = [
            cb
            for cb in default_callbacks(config, trial_dir, echo=_prefixed(name))
            if not isinstance(cb, MlflowCallback)
        ]
        if context.target.enabled:
            callbacks.append(
                MlflowCallback(context.target, name, tags, parent_run_id=context.parent_run_id)
            )
        observer = TrialCallback(
            record, trial_dir, report, lambda: seconds_before + time.perf_counter() - started
        )
        callbacks.append(observer)
        loop = ActiveLearningLoop(config, trial_dir, Path(context.base_dir), callbacks=callbacks)
        summary = loop.run()
        if summary.status not in ("finished", "stopped"):  # stopped: al.stopping ended it
            raise MtalError(f"trial {name} stopped: {summary.message}")
    except Exception as err:
        record.status, record.failed_run = "failed", context.run_id
        record.error = f"{type(err).__name__}: {err}\n" + "".join(
            traceback.format_exception(err)[-6:]
        )
        record.seconds = seconds_before + time.perf_counter() - started
        record.save(trial_dir)
        try:
            if record.mlflow_run_id is None:
                record.mlflow_run_id = start_run(
                    context.target, None, name, params, {"sweep.trial": name},
                    parent_id=context.parent_run_id,
                )  # fmt: skip
                record.save(trial_dir)
            set_status(
                context.target,
                record.mlflow_run_id,
                "FAILED",
                {"sweep.status": "failed", "sweep.error": f"{type(err).__name__}: {err}"},
            )
        except Exception as tracking_error:  # the trial's own error matters more
            print(f"[{name}] could not record the failure in MLflow: {tracking_error}")
        raise
    record.status = "finished"
    record.seconds = seconds_before + time.perf_counter() - started
    record.save(trial_dir)
    set_status(
        context.target,
        record.mlflow_run_id,
        "FINISHED",
        {"sweep.status": "finished", "sweep.seconds": f"{record.seconds:.1f}"},
    )
    final = {"iteration": len(summary.rows) - 1, "done": True}
    if summary.rows:
        final.update(_row_metrics(summary.rows[-1]))
    # Tune counts reports as iterations: one per AL iteration (the observer's), so Tune's
    # "completed after N iterations" agrees with ours; a report only if the last is missing
    if report is not None and final["iteration"] not in observer.reported:
        report(final)
    return final


def make_trainable(context: TrialContext) -> Callable[[dict[str, Any]], None]:
    """The Tune function trainable for ``context`` (parameters arrive as Tune's config)."""

    from mtal_ray.logs import env_vars

    launcher_env = env_vars()  # the launcher's --verbose / terminal, for the trial process

    def mtal_trial(config: dict[str, Any]) -> None:
        import os

        from ray import tune

        from mtal_ray.logs import setup_logging

        os.environ.update(launcher_env)
        setup_logging("trial")
        run_trial(trial_params(config), context, report=tune.report)

    return mtal_trial
