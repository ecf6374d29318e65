"""The active-learning loop's state, persisted atomically in the run directory.

State is data: after every step the driver rewrites ``RUN_DIR/state.json`` (temporary
file, fsync, rename), so a relaunch with the same run directory resumes at the first
unfinished step whatever moment the process died (``kill -9`` included). Large per-round
artifacts (the confidence table, the selection) are written atomically *before* the state
that points at them, and the update of the labeled set is idempotent, so nothing selected
is ever lost or selected twice.

Steps of one iteration, in order (:data:`STEPS`): ``train`` (fit on the labeled set,
evaluate on dev/test) → ``score`` (confidences of the pool) → ``select`` → ``annotate``
(oracle, or export for people and wait for ``mtal-ray import``) → ``update`` (move the
selection from the pool to the labeled set). The last iteration only trains.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from mtal_ray.data.atomic import atomic_write_text
from mtal_ray.data.splits import ids_in, rows_without
from mtal_ray.errors import MtalError


class Step(StrEnum):
    """The steps of one iteration, in order, and ``done`` (stored by name in state.json)."""

    TRAIN = "train"
    SCORE = "score"
    SELECT = "select"
    ANNOTATE = "annotate"
    UPDATE = "update"
    DONE = "done"


STEPS = tuple(s.value for s in Step if s is not Step.DONE)
STATE_FILE = "state.json"
#: Where the run was last launched from: relative paths of its config start there.
LAUNCH_FILE = "launch.json"
STATE_VERSION = 1


@dataclass
class RoundRecord:
    """What one iteration produced."""

    iteration: int
    n_labeled: dict[str, int] = field(default_factory=dict)
    checkpoint: str | None = None
    dev: dict[str, float] = field(default_factory=dict)
    test: dict[str, float] = field(default_factory=dict)
    confidence_table: str | None = None
    selection: str | None = None
    selected: int = 0
    cost: float = 0.0
    #: The cost model's price of the round's selection counted on the labels the annotator
    #: gave (None: not annotated yet, or a run from before it was recorded).
    annotated_cost: float | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    scoring_rows_per_s: float | None = None
    #: Per task: what the stopping criteria measured (κ, uncertainty, cost) and decided.
    stopping: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Measured annotation time (an annotation tool's): ``total`` and per task, seconds.
    annotation_seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class LoopState:
    """The whole state of an AL run (JSON-serialisable).

    Attributes
    ----------
    iteration
        Current iteration (0-based).
    step
        Next step to run in the current iteration (one of :data:`STEPS`, or ``"done"``).
    labeled
        Task -> ids annotated for that task (sorted).
    excluded
        Ids of the training split that are neither labeled nor in the pool: the dev set
        when it was carved out of the training split, and sentences selected for no task.
        The pool is what is left (:meth:`pool_of`): it is never stored as a list of ids,
        so a pool of millions of sentences costs the state file nothing.
    pool_size
        How many sentences the pool holds (for status lines; :meth:`pool_of` is the truth).
    dev
        Ids of the (capped) dev set.
    """

    config_digest: str
    iterations: int
    iteration: int = 0
    step: Step = Step.TRAIN
    labeled: dict[str, list[str]] = field(default_factory=dict)
    excluded: list[str] = field(default_factory=list)
    pool_size: int = 0
    dev: list[str] = field(default_factory=list)
    initial_size: int = 0
    cost_spent: float = 0.0
    #: The sum of the rounds' :attr:`RoundRecord.annotated_cost`.
    annotated_cost_spent: float = 0.0
    mlflow_run_id: str | None = None
    #: This run's identity in the tracking store (a tag of its MLflow run): a run created
    #: but killed before its id reached state.json is found again by it, not duplicated.
    run_key: str = field(default_factory=lambda: uuid.uuid4().hex)
    rounds: list[RoundRecord] = field(default_factory=list)
    #: Per task (when ``al.stopping`` is set): ``stopped_at`` (iteration or None),
    #: ``criterion`` and its last ``value``.
    stopping: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Unlabeled ids the stabilizing-predictions criterion compares predictions on.
    stop_set: list[str] = field(default_factory=list)
    #: The ``al.stopping`` rules the run started with (``{"rules": [...], "combine": ...}``;
    #: ``None`` in a state written before they were recorded): decisions already taken
    #: depend on them, so a resume with other rules is refused.
    stopping_rules: dict[str, Any] | None = None
    #: Why the run ended before its last iteration when not every task stopped (a
    #: single-task method whose task stopped); ``None`` otherwise.
    stop_reason: str | None = None
    version: int = STATE_VERSION

    @property
    def done(self) -> bool:
        """Whether every iteration has finished."""
        return self.step == Step.DONE

    @property
    def all_stopped(self) -> bool:
        """Whether per-task stopping has stopped every task (the run ends early)."""
        return bool(self.stopping) and all(
            entry.get("stopped_at") is not None for entry in self.stopping.values()
        )

    @property
    def ended_early(self) -> bool:
        """Whether per-task stopping ended the run (every task stopped, or the task a
        single-task method selects by)."""
        return self.all_stopped or self.stop_reason is not None

    def round(self, iteration: int | None = None) -> RoundRecord:
        """The record of ``iteration`` (default: the current one), created on first use."""
        it = self.iteration if iteration is None else iteration
        while len(self.rounds) <= it:
            self.rounds.append(RoundRecord(iteration=len(self.rounds)))
        return self.rounds[it]

    def labeled_ids(self) -> list[str]:
        """Ids annotated for at least one task (sorted)."""
        return sorted({sid for ids in self.labeled.values() for sid in ids})

    def apply_selection(self, tasks_per_id: dict[str, list[str]]) -> None:
        """Move selected ids from the pool to the labeled sets of their tasks (idempotent);
        an id selected for no task leaves the pool too (into :attr:`excluded`)."""
        for task in {t for ts in tasks_per_id.values() for t in ts}:
            current = set(self.labeled.get(task, []))
            current.update(sid for sid, ts in tasks_per_id.items() if task in ts)
            self.labeled[task] = sorted(current)
        unlabeled = {sid for sid, ts in tasks_per_id.items() if not ts}
        if unlabeled - set(self.excluded):
            self.excluded = sorted(set(self.excluded) | unlabeled)

    def out_of_pool(self) -> set[str]:
        """Ids that have left the pool: labeled for some task, or :attr:`excluded`."""
        return {sid for ids in self.labeled.values() for sid in ids} | set(self.excluded)

    def pool_of(self, train: pa.Table) -> pa.Table:
        """The rows of the training split still in the pool, sorted by id: every row not
        :meth:`out_of_pool` (Arrow; no per-row Python)."""
        return rows_without(train, self.out_of_pool())

    def pool_count(self, train: pa.Table) -> int:
        """How many rows :meth:`pool_of` holds, without building or sorting them."""
        return train.num_rows - int(pc.sum(ids_in(train, self.out_of_pool())).as_py() or 0)

    def to_json(self) -> str:
        """The JSON text of this state."""
        data = asdict(self)
        data.pop("legacy_pool")
        return json.dumps(data, indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoopState:
        """Inverse of ``asdict``; a value of the wrong shape is an :class:`MtalError`."""
        _check_shape(data)
        data = dict(data)
        rounds = [RoundRecord(**r) for r in data.pop("rounds", [])]
        legacy_pool = data.pop("pool", None)  # before the pool was derived (see migrate_pool)
        step = data.pop("step", Step.TRAIN)
        try:
            step = Step(step)
        except ValueError:
            known = ", ".join(s.value for s in Step)
            raise MtalError(f"unknown step {step!r} in the run state (known: {known})") from None
        state = cls(rounds=rounds, step=step, **data)
        if legacy_pool is not None:
            state.legacy_pool = legacy_pool
        return state

    #: The pool as an old state file listed it (read once by :meth:`migrate_pool`).
    legacy_pool: list[str] | None = field(default=None, init=False, repr=False, compare=False)

    def migrate_pool(self, train: pa.Table) -> bool:
        """Turn an old state's stored pool list into :attr:`excluded` (what the training
        split holds outside the pool and the labeled sets); True if there was one."""
        if self.legacy_pool is None:
            return False
        inside = set(self.legacy_pool) | set(self.labeled_ids())
        outside = train.filter(pc.invert(ids_in(train, inside)))
        self.excluded = sorted(outside.column("id").cast(pa.string()).to_pylist())
        self.pool_size = len(self.legacy_pool)
        self.legacy_pool = None
        return True


def _is_ids(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


#: What each field of state.json must hold, and how to say it.
_SHAPES: dict[str, tuple[Any, str]] = {
    "config_digest": (lambda v: isinstance(v, str), "a string"),
    "iterations": (
        lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
        "an int >= 1",
    ),
    "iteration": (
        lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
        "an int >= 0",
    ),
    "labeled": (
        lambda v: isinstance(v, dict) and all(_is_ids(ids) for ids in v.values()),
        "a mapping of task to a list of ids",
    ),
    "pool": (_is_ids, "a list of ids"),
    "excluded": (_is_ids, "a list of ids"),
    "pool_size": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "an int"),
    "dev": (_is_ids, "a list of ids"),
    "initial_size": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an int"),
    "cost_spent": (lambda v: isinstance(v, int | float) and not isinstance(v, bool), "a number"),
    "annotated_cost_spent": (
        lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "a number",
    ),
    "mlflow_run_id": (lambda v: v is None or isinstance(v, str), "a string or null"),
    "run_key": (lambda v: isinstance(v, str) and v != "", "a non-empty string"),
    "stopping_rules": (lambda v: v is None or isinstance(v, dict), "a mapping or null"),
    "stop_reason": (lambda v: v is None or isinstance(v, str), "a string or null"),
    "rounds": (
        lambda v: isinstance(v, list) and all(isinstance(r, dict) for r in v),
        "a list of round records",
    ),
}


def _check_shape(data: dict[str, Any]) -> None:
    for key, (ok, expected) in _SHAPES.items():
        if key in data and not ok(data[key]):
            shown = json.dumps(data[key])[:40]
            raise MtalError(f"{key!r} must be {expected}, not {shown}")


def save_state(run_dir: Path, state: LoopState) -> None:
    """Write ``RUN_DIR/state.json`` atomically."""
    atomic_write_text(Path(run_dir) / STATE_FILE, state.to_json())


def load_state(run_dir: Path) -> LoopState | None:
    """The persisted state of ``run_dir``, or ``None`` for a new run."""
    path = Path(run_dir) / STATE_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise MtalError(f"{path}: cannot read the run state ({err})") from err
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise MtalError(f"{path}: not a run state (a JSON {kind}, not an object)")
    if data.get("version") != STATE_VERSION:
        raise MtalError(f"{path}: state version {data.get('version')} is not {STATE_VERSION}")
    try:
        return LoopState.from_dict(data)
    except MtalError as err:
        raise MtalError(f"{path}: {err}") from None
    except (TypeError, ValueError) as err:
        raise MtalError(f"{path}: not a run state of this version ({err})") from None


def write_json(path: Path, payload: Any) -> None:
    """Write a JSON artifact atomically."""
    atomic_write_text(Path(path), json.dumps(payload, indent=1, sort_keys=True) + "\n")


def fault_point(name: str, run_dir: Path) -> None:
    """Test-only fault injection: pause forever at a named point of the loop.

    When the environment variable ``MTAL_RAY_PAUSE_AT`` equals ``name`` (e.g.
    ``after_select:0``), the driver writes ``RUN_DIR/.paused`` and sleeps, so that a test
    can ``kill -9`` the process at exactly that moment and check the resume.
    """
    if os.environ.get("MTAL_RAY_PAUSE_AT") != name:
        return
    import time

    (Path(run_dir) / ".paused").write_text(name, encoding="utf-8")
    while True:  # pragma: no cover - ended by SIGKILL from the test
        time.sleep(1)
