"""MLflow tracking of an AL run: one MLflow run per experiment, metrics per iteration.

The default store is a SQLite file beside the run directories (``<runs>/mlruns.db``) with
artifacts in ``<runs>/mlartifacts``; ``tracking.tracking_uri`` points at a tracking server
instead. The MLflow run id is kept in the loop state, so a resumed experiment keeps
logging into the same MLflow run. MLflow is imported lazily: the loop runs (and tests run)
with tracking disabled.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": "1"}`` (MLflow params are strings)."""
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = str(value)[:6000]
    return out


def default_tracking_uri(run_dir: Path) -> str:
    """``sqlite:///<parent of run_dir>/mlruns.db`` (absolute, so any working directory works)."""
    return f"sqlite:///{(Path(run_dir).resolve().parent / 'mlruns.db')}"


class Tracker:
    """Logs an AL run to MLflow (or does nothing when disabled)."""

    def __init__(
        self,
        enabled: bool,
        tracking_uri: str | None,
        experiment: str,
        run_dir: Path,
        artifact_location: str | None = None,
    ) -> None:
        self.enabled = enabled
        self.run_dir = Path(run_dir)
        self.uri = tracking_uri or default_tracking_uri(self.run_dir)
        self.experiment = experiment
        self.artifact_location = (
            artifact_location or (self.run_dir.resolve().parent / "mlartifacts").as_uri()
        )
        self.run_id: str | None = None

    def _client(self) -> Any:
        import mlflow

        mlflow.set_tracking_uri(self.uri)
        return mlflow

    def start(self, run_id: str | None, run_name: str, params: Mapping[str, Any]) -> str | None:
        """Start the MLflow run (or reopen ``run_id``); returns its id."""
        if not self.enabled:
            return None
        mlflow = self._client()
        experiment = mlflow.get_experiment_by_name(self.experiment)
        if experiment is None:
            experiment_id = mlflow.create_experiment(
                self.experiment, artifact_location=self.artifact_location
            )
        else:
            experiment_id = experiment.experiment_id
        client = mlflow.tracking.MlflowClient()
        if run_id is None:
            run = client.create_run(experiment_id, run_name=run_name)
            run_id = run.info.run_id
            for key, value in flatten(params).items():
                client.log_param(run_id, key, value)
        else:
            client.update_run(run_id, status="RUNNING")
        self.run_id = run_id
        return run_id

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Log a dict of metrics at ``step`` (the AL iteration)."""
        if not self.enabled or self.run_id is None:
            return
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [
            Metric(key=k, value=float(v), timestamp=now, step=step)
            for k, v in metrics.items()
            if v is not None and math.isfinite(float(v))
        ]
        self._client().tracking.MlflowClient().log_batch(self.run_id, metrics=batch)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        """Upload a file to the run's artifacts."""
        if not self.enabled or self.run_id is None or not Path(path).exists():
            return
        self._client().tracking.MlflowClient().log_artifact(
            self.run_id, str(path), artifact_path=artifact_path
        )

    def finish(self, status: str = "FINISHED") -> None:
        """Mark the run ``FINISHED`` (or ``FAILED`` / ``KILLED``)."""
        if not self.enabled or self.run_id is None:
            return
        self._client().tracking.MlflowClient().set_terminated(self.run_id, status=status)
