"""What a sweep stores per trial, and reading it back.

Layout of a sweep directory::

    SWEEP_DIR/
      sweep.json                 the sweep (base config, space, MLflow parent run, trial order)
      trials/<trial name>/       one AL run directory per trial (the driver's files) plus
        trial.json               the trial's parameters and status (:class:`TrialRecord`)
        summary.json             the driver's per-iteration rows (finished trials)
        rounds/round_0/selection.json   the first selection (for the overlap heat map)
      tune-<digest>-c<n>/        Ray Tune's experiment state (restore), n trials at once
      report.md, report.csv, learning_curves.png, overlap.png, beta.png,
      reference.csv, gain_over_random.png        the comparison with MT-R (sweep/reference.py)

Everything here reads and writes plain files; the report is a function of these files only.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mtal_ray.data.atomic import atomic_write_text
from mtal_ray.errors import MtalError
from mtal_ray.redact import redact_secrets

TRIALS_DIR = "trials"
TRIAL_FILE = "trial.json"
SWEEP_FILE = "sweep.json"
STATUSES = ("running", "finished", "failed")


@dataclass
class TrialRecord:
    """The trial's own record (``trial.json``), written when it starts and ends.

    Attributes
    ----------
    name
        The trial's folder name (:func:`mtal_ray.sweep.space.trial_name`).
    params
        The swept parameters (config key -> value; ``dataset`` names a scenario).
    method, beta, seed
        ``selection.method``, ``selection.beta`` and ``seed`` of the trial's resolved config.
    dataset
        Scenario name, or ``None`` when the sweep has no ``datasets``.
    tasks
        The experiment's tasks in config order (the report's column order).
    status
        ``running``, ``finished`` or ``failed``.
    attempts
        How many times the trial was started (resumes and retries included).
    seconds
        Wall time over all attempts (kept current after every step, so an attempt
        that is killed counts up to its last finished step).
    """

    name: str
    params: dict[str, Any]
    method: str | None = None
    beta: float | None = None
    seed: int = 0
    dataset: str | None = None
    tasks: list[str] = field(default_factory=list)
    status: str = "running"
    attempts: int = 0
    error: str | None = None
    seconds: float = 0.0
    mlflow_run_id: str | None = None
    #: The ``mtal-ray sweep`` invocation (its run id) in which the trial last failed.
    failed_run: str | None = None

    def save(self, trial_dir: Path) -> None:
        """Write ``trial_dir/trial.json`` atomically."""
        record = redact_secrets(asdict(self))  # errors may quote a URI with a password
        text = json.dumps(record, indent=1, sort_keys=True, default=str) + "\n"
        atomic_write_text(Path(trial_dir) / TRIAL_FILE, text)

    @classmethod
    def load(cls, trial_dir: Path) -> TrialRecord | None:
        """The record in ``trial_dir``, or ``None`` if there is none."""
        path = Path(trial_dir) / TRIAL_FILE
        if not path.exists():
            return None
        data = _read_json(path)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        try:
            return cls(**known)
        except TypeError as err:
            raise MtalError(f"{path}: not a trial record ({err})") from None


@dataclass
class TrialResult:
    """A trial's stored outcome, as the report uses it."""

    record: TrialRecord
    rows: list[dict[str, Any]] = field(default_factory=list)
    first_selection: list[str] | None = None
    #: Per task, when the trial ran with ``al.stopping``: ``stopped_at`` (iteration or
    #: None), ``criterion``, ``value``, ``cost`` (spent annotating the task).
    stopping: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def cost(self) -> float | None:
        """The annotation cost the trial's selections spent (``None`` if none recorded)."""
        costs = [r.get("cost") for r in self.rows]
        known = [float(c) for c in costs if c is not None]
        return sum(known) if known else None

    @property
    def tasks(self) -> list[str]:
        """Tasks with a score in the rows: the record's task order, then any others."""
        scored: dict[str, None] = {}
        for row in self.rows:
            for key in row:
                split, _, task = key.partition(".")
                if split in ("dev", "test") and task:
                    scored.setdefault(task, None)
        seen = {task: None for task in self.record.tasks if task in scored}
        seen.update(scored)
        return list(seen)

    def scores(self, split: str, *, fallback: bool = True) -> dict[str, list[float | None]]:
        """Per task, the score at each iteration on ``split`` (a task without ``split``
        scores falls back to ``dev``, unless ``fallback`` is False: then it is all None)."""
        out: dict[str, list[float | None]] = {}
        for task in self.tasks:
            chosen = split
            if fallback and not any(f"{split}.{task}" in r for r in self.rows):
                chosen = "dev"
            out[task] = [_number(r.get(f"{chosen}.{task}")) for r in self.rows]
        return out

    def final_scores(self, split: str) -> dict[str, float]:
        """Per task, the score after the last iteration."""
        final = {}
        for task, values in self.scores(split).items():
            if values and values[-1] is not None:
                final[task] = values[-1]
        return final

    @property
    def sizes(self) -> list[int | None]:
        """Labeled-set size at each iteration."""
        return [r.get("labeled") for r in self.rows]


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise MtalError(f"{path}: cannot read ({err})") from None


def load_trial(trial_dir: Path) -> TrialResult | None:
    """Read one trial folder; ``None`` when it holds no ``trial.json``."""
    trial_dir = Path(trial_dir)
    record = TrialRecord.load(trial_dir)
    if record is None:
        return None
    rows: list[dict[str, Any]] = []
    stopping: dict[str, dict[str, Any]] = {}
    summary = trial_dir / "summary.json"
    if record.status == "finished" and summary.exists():
        data = _read_json(summary)
        rows = sorted(data.get("rows", []), key=lambda r: r.get("iteration", 0))
        stopping = dict(data.get("stopping") or {})
    selection = trial_dir / "rounds" / "round_0" / "selection.json"
    first = None
    if selection.exists():
        first = [str(i) for i in _read_json(selection).get("ids", [])]
    return TrialResult(record, rows, first, stopping)


def load_trials(sweep_dir: Path) -> list[TrialResult]:
    """Every trial stored under ``SWEEP_DIR/trials`` (sorted by name)."""
    root = Path(sweep_dir) / TRIALS_DIR
    if not root.is_dir():
        raise MtalError(f"{sweep_dir}: not a sweep directory (no {TRIALS_DIR}/ folder)")
    results = []
    for child in sorted(root.iterdir()):
        if child.is_dir():
            result = load_trial(child)
            if result is not None:
                results.append(result)
    return results


def load_sweep_info(sweep_dir: Path) -> dict[str, Any]:
    """``SWEEP_DIR/sweep.json`` (empty when absent, e.g. hand-made trial folders)."""
    path = Path(sweep_dir) / SWEEP_FILE
    return _read_json(path) if path.exists() else {}


def save_sweep_info(sweep_dir: Path, info: dict[str, Any]) -> None:
    """Write ``SWEEP_DIR/sweep.json`` atomically."""
    text = json.dumps(redact_secrets(info), indent=1, sort_keys=True, default=str) + "\n"
    atomic_write_text(Path(sweep_dir) / SWEEP_FILE, text)
