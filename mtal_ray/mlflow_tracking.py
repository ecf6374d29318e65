"""MLflow, the one wrapper: a store (:class:`MlflowTarget`) and the calls we make on it.

An AL run is one MLflow run (its observer, :class:`mtal_ray.driver.observers.MlflowCallback`,
logs per-iteration metrics and artifacts); a sweep is a parent run with one child run per
trial, tagged ``mlflow.parentRunId`` so the MLflow UI nests it. The default store of a run
is a SQLite file beside the run directories (``<runs>/mlruns.db``, artifacts in
``<runs>/mlartifacts``); ``tracking.tracking_uri`` points at a tracking server instead.
MLflow itself is imported only when a call needs it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtal_ray.redact import redact_uri

PARENT_TAG = "mlflow.parentRunId"
#: The tag that names a run's identity in its run state (``LoopState.run_key``).
RUN_KEY_TAG = "mtal.run_key"
#: The experiment tag from which the MLflow UI decides what an experiment opens on.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
#: Where an environment variable can name the entry point of a run started in another process.
ENTRY_POINT_ENV = "MTAL_RAY_ENTRY_POINT"


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": "1"}`` (MLflow params are strings)."""
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = redact_uri(str(value))[:6000]  # no credentials in params
    return out


def default_tracking_uri(run_dir: Path) -> str:
    """``sqlite:///<parent of run_dir>/mlruns.db`` (absolute, so any working directory works)."""
    return f"sqlite:///{(Path(run_dir).resolve().parent / 'mlruns.db')}"


@dataclass(frozen=True)
class MlflowTarget:
    """Where a sweep's runs go (picklable, handed to every trial)."""

    tracking_uri: str
    experiment: str
    artifact_location: str
    enabled: bool = True

    @classmethod
    def for_run(cls, tracking: Any, run_dir: Path) -> MlflowTarget:
        """From the config's ``tracking`` section; default store beside the run directory."""
        parent = Path(run_dir).resolve().parent
        return cls(
            tracking_uri=tracking.tracking_uri or default_tracking_uri(run_dir),
            experiment=tracking.experiment,
            artifact_location=tracking.artifact_location or (parent / "mlartifacts").as_uri(),
            enabled=tracking.enabled,
        )

    @classmethod
    def for_sweep(cls, tracking: Any, sweep_dir: Path) -> MlflowTarget:
        """From the config's ``tracking`` section; default store ``SWEEP_DIR/mlruns.db``."""
        sweep_dir = Path(sweep_dir).resolve()
        return cls(
            tracking_uri=tracking.tracking_uri or f"sqlite:///{sweep_dir / 'mlruns.db'}",
            experiment=tracking.experiment,
            artifact_location=tracking.artifact_location or (sweep_dir / "mlartifacts").as_uri(),
            enabled=tracking.enabled,
        )

    def client(self) -> Any:
        """An ``MlflowClient`` on this store."""
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri)

    def experiment_id(self) -> str:
        """The experiment's id (created with the sweep's artifact location if missing)."""
        client = self.client()
        found = client.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        try:
            return client.create_experiment(
                self.experiment,
                artifact_location=self.artifact_location,
                tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND},
            )
        except Exception:  # created concurrently by another process
            found = client.get_experiment_by_name(self.experiment)
            if found is None:
                raise
            return found.experiment_id


def _log_params(client: Any, run_id: str, params: Mapping[str, Any]) -> None:
    from mlflow.entities import Param

    items = [Param(k, v) for k, v in flatten(params).items()]
    for start in range(0, len(items), 100):  # MLflow accepts at most 100 params per batch
        client.log_batch(run_id, params=items[start : start + 100])


def start_run(
    target: MlflowTarget,
    run_id: str | None,
    name: str,
    params: Mapping[str, Any],
    tags: Mapping[str, str],
    parent_id: str | None = None,
) -> str | None:
    """Create the run (params and tags logged) or reopen ``run_id``; returns its id.

    A reopened run keeps its params; its tags are updated and its status set to RUNNING.
    """
    if not target.enabled:
        return None
    client = target.client()
    all_tags = dict(tags)
    if parent_id:
        all_tags[PARENT_TAG] = parent_id
    if run_id is None:
        run = client.create_run(target.experiment_id(), run_name=name, tags=all_tags)
        run_id = run.info.run_id
        _log_params(client, run_id, params)
    else:
        client.update_run(run_id, status="RUNNING")
        for key, value in all_tags.items():
            client.set_tag(run_id, key, value)
    return run_id


def run_exists(target: MlflowTarget, run_id: str) -> bool:
    """Whether ``run_id`` is a live run of ``target``'s experiment (not in another store or
    experiment, not deleted)."""
    from mlflow.exceptions import MlflowException

    try:
        run = target.client().get_run(run_id)
    except MlflowException:
        return False
    return run.info.lifecycle_stage == "active" and run.info.experiment_id == str(
        target.experiment_id()
    )


def find_run(target: MlflowTarget, key: str) -> str | None:
    """The id of the experiment's run tagged ``RUN_KEY_TAG = key`` (the newest), if any:
    a run whose creation was interrupted before its id was written to the run state."""
    if not target.enabled:
        return None
    found = target.client().search_runs(
        [target.experiment_id()],
        filter_string=f"tags.`{RUN_KEY_TAG}` = '{key}'",
        max_results=1,
        order_by=["attributes.start_time DESC"],
    )
    return found[0].info.run_id if found else None


def has_datasets(target: MlflowTarget, run_id: str) -> bool:
    """Whether the run has logged dataset inputs."""
    run = target.client().get_run(run_id)
    return bool(run.inputs and run.inputs.dataset_inputs)


def set_status(
    target: MlflowTarget, run_id: str | None, status: str, tags: Mapping[str, str] | None = None
) -> None:
    """Tag the run and end it as ``FINISHED``, ``FAILED`` or ``KILLED``."""
    if not target.enabled or run_id is None:
        return
    client = target.client()
    for key, value in (tags or {}).items():
        client.set_tag(run_id, key, redact_uri(str(value))[:5000])
    client.set_terminated(run_id, status=status)


def log_metrics(
    target: MlflowTarget, run_id: str | None, metrics: Mapping[str, float], step: int = 0
) -> None:
    """Log the finite values of ``metrics`` at ``step``."""
    if not target.enabled or run_id is None:
        return
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    batch = [
        Metric(key=k, value=float(v), timestamp=now, step=step)
        for k, v in metrics.items()
        if v is not None and math.isfinite(float(v))
    ]
    client = target.client()
    for start in range(0, len(batch), 500):
        client.log_batch(run_id, metrics=batch[start : start + 500])


def log_artifacts(
    target: MlflowTarget,
    run_id: str | None,
    paths: list[Path],
    artifact_path: str | None = None,
) -> None:
    """Upload the existing files of ``paths`` to the run's artifacts (under ``artifact_path``)."""
    if not target.enabled or run_id is None:
        return
    client = target.client()
    for path in paths:
        if Path(path).exists():
            client.log_artifact(run_id, str(path), artifact_path=artifact_path)


def run_info(target: MlflowTarget, run_id: str) -> Any:
    """The MLflow run (for checks and tests)."""
    return target.client().get_run(run_id)


def entry_point() -> str:
    """The program that started this run: ``$MTAL_RAY_ENTRY_POINT`` when a launcher set it
    (a Ray worker's own ``argv[0]`` says nothing), else ``sys.argv[0]``."""
    import os
    import sys

    named = os.environ.get(ENTRY_POINT_ENV)
    if named:
        return named
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else "mtal_ray"
    if "ray/_private" in argv0.replace("\\", "/") or argv0.endswith("default_worker.py"):
        return "mtal_ray.launch"
    return str(Path(argv0).resolve()) if Path(argv0).exists() else argv0


def code_version() -> str | None:
    """The git commit of the checkout holding the ``mtal_ray`` code, if it is one."""
    import subprocess

    code = Path(__file__).resolve().parent
    try:
        found = subprocess.run(
            ["git", "-C", str(code), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = found.stdout.strip()
    return commit if found.returncode == 0 and len(commit) == 40 else None


def source_tags(name: str | None = None) -> dict[str, str]:
    """MLflow's standard source tags: entry point, source type, git commit when known."""
    from mlflow.entities import SourceType
    from mlflow.utils.mlflow_tags import (
        MLFLOW_GIT_COMMIT,
        MLFLOW_SOURCE_NAME,
        MLFLOW_SOURCE_TYPE,
    )

    tags = {
        MLFLOW_SOURCE_NAME: name or entry_point(),
        MLFLOW_SOURCE_TYPE: SourceType.to_string(SourceType.LOCAL),
    }
    commit = code_version()
    if commit:
        tags[MLFLOW_GIT_COMMIT] = commit
    return tags


def log_datasets(
    target: MlflowTarget,
    run_id: str | None,
    datasets: list[tuple[Any, str]],
) -> None:
    """Log dataset inputs: ``(summary, context)`` pairs, each summary with ``name``,
    ``digest``, ``source`` and ``profile()`` (:class:`mtal_ray.data.lineage.SplitSummary`).

    Each becomes an MLflow dataset (source type ``local``) tagged with its context
    (``mlflow.data.context``), the runs table's Dataset column.
    """
    if not target.enabled or run_id is None or not datasets:
        return
    import json

    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    inputs = [
        DatasetInput(
            Dataset(
                name=summary.name,
                digest=summary.digest,
                source_type="local",
                source=json.dumps({"uri": summary.source}),
                schema=None,
                profile=json.dumps(summary.profile()),
            ),
            tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)],
        )
        for summary, context in datasets
    ]
    client = target.client()
    for attempt in range(_DUPLICATE_RETRIES):
        try:
            client.log_inputs(run_id, datasets=inputs)
            return
        except Exception as error:  # MlflowException wrapping the store's IntegrityError
            if not _is_duplicate_insert(error) or attempt == _DUPLICATE_RETRIES - 1:
                raise
            # Another run of the experiment (a concurrent sweep trial) inserted the same
            # dataset between MLflow's look-up and its insert; the whole transaction was
            # rolled back, and the next attempt finds the dataset and only links it.
            time.sleep(0.05 * (attempt + 1))


#: Attempts at logging dataset inputs when a concurrent run inserts the same dataset.
_DUPLICATE_RETRIES = 5


def _is_duplicate_insert(error: BaseException) -> bool:
    """Whether ``error`` is a store's unique-constraint violation (SQLite, PostgreSQL, MySQL)."""
    text = str(error).lower()
    return any(
        marker in text for marker in ("unique constraint", "duplicate key", "duplicate entry")
    )


def log_table(
    target: MlflowTarget, run_id: str | None, rows: list[dict[str, Any]], artifact_file: str
) -> None:
    """Log ``rows`` as an MLflow table artifact (a JSON table the UI shows as a grid)."""
    if not target.enabled or run_id is None or not rows:
        return
    import pandas as pd

    target.client().log_table(run_id, pd.DataFrame(rows), artifact_file)
