"""Run (or resume) a sweep with Ray Tune: :func:`run_sweep`.

The sweep directory holds everything: the trials' AL run directories, Tune's experiment
state (``tune-<space digest>-c<trials at once>``), the MLflow store (by default) and the
report. Running the same command again restores the Tune experiment, so finished trials are
kept and only the unfinished (and, with ``sweep.retry_failed``, the failed) trials run; each
of those resumes its AL loop from its own persisted state. Changing the grid starts a new
Tune experiment in the same directory, and trials whose parameters did not change are found
again by name. So does changing how many trials run at once (``max_concurrent_trials``, or
the cluster's CPUs behind its default): Tune keeps a restored experiment's own limit.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from pathlib import Path
from typing import Any

from mtal_ray.config import apply_overrides, read_yaml, validate
from mtal_ray.errors import ConfigError, MtalError, user_error
from mtal_ray.mlflow_tracking import (
    ENTRY_POINT_ENV,
    MlflowTarget,
    entry_point,
    log_artifacts,
    log_metrics,
    log_table,
    run_exists,
    set_status,
    source_tags,
    start_run,
)
from mtal_ray.ray_session import ensure_ray, gpu_needs, warn_if_ephemeral
from mtal_ray.redact import redact_uri
from mtal_ray.run_lock import LOCK_FILE, clear_directory, locked
from mtal_ray.sweep.config import SweepConfig
from mtal_ray.sweep.report import common_split, score_table, write_report
from mtal_ray.sweep.results import SWEEP_FILE, TRIALS_DIR, load_sweep_info, save_sweep_info
from mtal_ray.sweep.space import (
    edge_values,
    grid_points,
    representative,
    space_digest,
    trial_name,
    trial_params,
    trial_raw_config,
    tune_param_space,
)
from mtal_ray.sweep.trial import TrialContext, make_trainable


def sweep_directory(sweep: SweepConfig, config_path: Path, explicit: str | None = None) -> Path:
    """``--sweep-dir``, else ``<sweep.dir>/<sweep.name or config stem>`` (absolute)."""
    chosen = explicit or str(Path(sweep.dir) / (sweep.name or Path(config_path).stem))
    return Path(chosen).expanduser().resolve()


def plan_trials(config: Any, raw: dict[str, Any]) -> list[tuple[str, Any]]:
    """Name and validated config of each grid trial, checked before Ray starts.

    Each grid point is validated with a representative value of every random dimension,
    and again with each edge of every random dimension (each ``choice``, the low and high
    of a range: :func:`~mtal_ray.sweep.space.edge_values`), so a value Tune may sample is
    refused now rather than after other trials trained. Validation builds each trial's
    selector, so e.g. ``mt-r`` with a β fails here. Raises :class:`ConfigError` naming the
    trial and key when a trial's config is invalid.
    """
    sweep: SweepConfig = config.sweep
    random_keys = frozenset(sweep.random)
    model = type(config)

    def checked(params: dict[str, Any], name: str) -> Any:
        try:
            trial = validate(model, trial_raw_config(raw, params, sweep.datasets))
        except ConfigError as err:
            raise ConfigError(f"sweep trial {name}: {err}") from None
        mode = getattr(getattr(trial, "annotation", None), "mode", "oracle")
        if mode != "oracle":
            raise ConfigError(
                f"sweep trial {name}: annotation.mode: a sweep needs the oracle (got {mode!r})"
            )
        return trial

    planned: list[tuple[str, Any]] = []
    for point in grid_points(sweep):
        params = {**point, **{k: representative(d) for k, d in sweep.random.items()}}
        name = trial_name(params, random_keys)
        planned.append((name, checked(params, name)))
        for key, dist in sweep.random.items():
            for value in edge_values(dist):
                if value != params[key]:
                    where = f"{trial_name(point)} with {key}={value!r} (sweep.random)"
                    checked({**params, key: value}, where)
    names = [name for name, _ in planned]
    if not random_keys and len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ConfigError(f"sweep.grid: values that give the same trial name: {', '.join(dupes)}")
    return planned


def check_datasets(trial_configs: list[Any], base_dir: Path) -> None:
    """Load each distinct dataset of the trials once, as a trial would, before Ray starts.

    A corpus the reader refuses, a missing split or a task the corpus lacks raises the
    reader's :class:`~mtal_ray.errors.MtalError` here, not in every trial.
    """
    import json

    from mtal_ray.driver.loop import load_run_data

    seen: set[str] = set()
    for trial in trial_configs:
        key = json.dumps([trial.seed, trial.data.model_dump(mode="json")], sort_keys=True)
        if key not in seen:
            seen.add(key)
            load_run_data(trial, base_dir)


def planned_trials(config: Any, raw: dict[str, Any]) -> list[str]:
    """Names of the grid's trials, after validating each trial's config (see plan_trials)."""
    return [name for name, _ in plan_trials(config, raw)]


def nested_cpus(config: Any) -> float:
    """CPUs a trial's nested work reserves at once: its Train workers or its scoring actors.

    A trial that trains in its own actor (``training.num_workers: 0``) counts the CPUs one
    worker would get: Ray reserves only ``sweep.trial_cpus`` for the actor, but the
    training uses a CPU all the same, so as many trials run at once as with one worker."""
    training = getattr(config, "training", None)
    scoring = getattr(config, "scoring", None)
    train = max(1, training.num_workers) * training.cpus_per_worker if training is not None else 0.0
    score = scoring.concurrency * scoring.cpus_per_actor if scoring is not None else 0.0
    return float(max(train, score))


def trial_concurrency(
    sweep: SweepConfig, trial_configs: list[Any], cluster_cpus: float, trials: int | None = None
) -> int:
    """Trials to run at once; refuses a sweep whose nested workers could never start.

    Resources add up: by default only as many trials run as fit *together* — each trial
    actor's ``sweep.trial_cpus`` plus its Train workers / scoring actors — so no trial's
    worker group waits for CPUs another trial holds (on 2 cores, one 1-CPU worker per
    trial runs one trial at a time; 0.99 CPU per worker runs two). An explicit
    ``max_concurrent_trials`` is taken as given, as long as one trial's nested work fits
    next to the running trial actors. Never more than ``trials`` (the sweep's trial count),
    so the limit, and the Tune experiment named by it, does not follow a bigger machine's
    CPU count when every trial already runs at once.
    """
    need = sweep.cpus_per_trial or max((nested_cpus(c) for c in trial_configs), default=1.0)
    need = max(need, 1e-6)
    fits = int((cluster_cpus + 1e-9) // (need + sweep.trial_cpus))
    concurrency = sweep.max_concurrent_trials or max(1, fits)
    if trials is not None:
        concurrency = max(1, min(concurrency, trials))
    if need + concurrency * sweep.trial_cpus > cluster_cpus + 1e-9:
        raise ConfigError(
            f"sweep: a trial's Train workers / scoring actors reserve {need:g} CPUs and "
            f"{concurrency} running trial(s) hold sweep.trial_cpus={sweep.trial_cpus:g} each: "
            f"more than the cluster's {cluster_cpus:g} CPUs, so the nested workers could never "
            "start. Lower training.num_workers or training.cpus_per_worker (e.g. 0.99), "
            "scoring.concurrency or scoring.cpus_per_actor, or sweep.max_concurrent_trials."
        )
    return concurrency


#: Sections whose change makes a sweep directory hold a different sweep (as for AL runs).
_IDENTITY_SECTIONS = ("seed", "data", "model", "training", "scoring", "selection", "annotation")


def _identity_digest(raw: dict[str, Any]) -> str:
    """Digest of the base config as the user wrote it (YAML + overrides, no defaults),
    without the sections that may change between runs of one sweep (al, tracking, sweep)."""
    import hashlib
    import json

    identity = {k: raw.get(k) for k in _IDENTITY_SECTIONS}
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _clear(sweep_dir: Path) -> None:
    if not sweep_dir.exists():
        return
    looks_like_sweep = (sweep_dir / SWEEP_FILE).exists() or (sweep_dir / TRIALS_DIR).exists()
    if not looks_like_sweep and any(p.name != LOCK_FILE for p in sweep_dir.iterdir()):
        raise ConfigError(f"--restart: {sweep_dir} is not a sweep directory; not deleting it")
    clear_directory(sweep_dir)  # keeps the lock this process holds


def _metric_name(text: str) -> str:
    """``average.mt-avg (β=0.5)`` -> ``average.mt-avg.β_0.5`` (MLflow's allowed characters)."""
    text = text.replace(" (", ".").replace(", ", ".").replace("=", "_").rstrip(")")
    return re.sub(r"[^\w.\- /]+", "_", text)


def run_sweep(config: Any, config_path: Path, args: argparse.Namespace) -> int:
    """Run or resume the sweep of ``config.sweep``; write and log its report.

    Returns 0 when every trial finished, 1 when some failed (they are listed in the report).
    """
    sweep: SweepConfig = config.sweep
    config_path = Path(config_path)
    raw = apply_overrides(read_yaml(config_path), getattr(args, "overrides", []) or [])
    sweep_dir = sweep_directory(sweep, config_path, getattr(args, "run_dir", None))
    # one sweep per directory, taken before Ray starts or anything is written
    with locked(sweep_dir, what="sweep directory", command="mtal-ray sweep"):
        return _run_sweep(config, config_path, args, raw, sweep_dir)


def _run_sweep(
    config: Any, config_path: Path, args: argparse.Namespace, raw: dict[str, Any], sweep_dir: Path
) -> int:
    sweep: SweepConfig = config.sweep
    base_raw = {k: v for k, v in raw.items() if k != "sweep"}
    name = sweep.name or config_path.stem
    warn_if_ephemeral("sweep directory", sweep_dir)
    if getattr(args, "local", False):
        print("note: --local is ignored by sweeps (trials always run on Ray)")
    planned = plan_trials(config, base_raw)
    check_datasets([c for _, c in planned], Path.cwd())  # the reader's one line, before Ray
    trials = [name for name, _ in planned]
    needs = gpu_needs(c for _, c in planned)  # GPUs it can never give: stop before the
    early_ray = ensure_ray(gpus=needs) if needs else False  # sweep directory is written
    if getattr(args, "restart", False):
        _clear(sweep_dir)
    info = load_sweep_info(sweep_dir)
    identity = _identity_digest(base_raw)
    if info.get("identity") not in (None, identity):
        raise ConfigError(
            f"{sweep_dir} holds a sweep over a different base config (data/model/training/"
            "scoring/selection/annotation/seed differ); pass --restart or set sweep.name"
        )
    sweep_dir.mkdir(parents=True, exist_ok=True)
    target = MlflowTarget.for_sweep(config.tracking, sweep_dir)
    digest = space_digest(sweep)
    known = info.get("parent_run_id")
    if known and target.enabled and not run_exists(target, known):
        print(f"note: the sweep's MLflow run {known} is not in {redact_uri(target.tracking_uri)}")
        known = None  # the store was moved, deleted or changed: a new parent run
    parent = start_run(
        target,
        known,
        name,
        raw,
        {
            "sweep.name": name,
            "sweep.dir": str(sweep_dir),
            "sweep.trials": str(len(trials)),
            **source_tags(),
        },
    )
    info = {
        "name": name,
        "config_path": str(config_path.resolve()),
        "identity": identity,
        "space_digest": digest,
        "parent_run_id": parent,
        "tracking_uri": target.tracking_uri,
        "experiment": target.experiment,
        "datasets": list(sweep.datasets),
        "report_split": sweep.report_split,
        "trials": trials,
        "config": raw,
    }
    save_sweep_info(sweep_dir, info)
    context = TrialContext(
        sweep_name=name,
        sweep_dir=str(sweep_dir),
        base_raw=base_raw,
        datasets=sweep.datasets,
        base_dir=str(Path.cwd()),
        target=target,
        parent_run_id=parent,
        config_model=type(config),
        random_keys=frozenset(sweep.random),
        retry_failed=sweep.retry_failed,
    )
    started = time.perf_counter()
    os.environ.setdefault(ENTRY_POINT_ENV, entry_point())  # trials' source tag (local Ray)
    started_ray = ensure_ray() or early_ray
    try:
        cpus = float(ray_cluster_cpus())
        total = len(planned) * sweep.num_samples
        concurrency = trial_concurrency(sweep, [c for _, c in planned], cpus, total)
        tune_dir, note = tune_experiment_dir(sweep_dir, digest, concurrency)
        if note:
            print(note)
        failed = _fit(sweep, tune_dir, context, concurrency)
    except BaseException:
        set_status(target, parent, "KILLED", {"sweep.status": "interrupted"})
        raise
    finally:
        if started_ray:
            import ray

            ray.shutdown()
    seconds = time.perf_counter() - started
    written = write_report(sweep_dir, split=sweep.report_split)
    loaded = _loaded(sweep_dir)
    table = score_table(loaded, common_split(loaded, sweep.report_split)[0], list(sweep.datasets))
    log_metrics(
        target,
        parent,
        {
            **{
                _metric_name(f"average.{label}"): value
                for label, value in table.average.items()
                if value is not None
            },
            "trials.failed": failed,
            "seconds": seconds,
        },
    )
    log_artifacts(target, parent, written)
    log_report(target, parent, sweep_dir)
    set_status(
        target,
        parent,
        "FINISHED",
        {"sweep.status": "finished", "sweep.failed_trials": str(failed)},
    )
    print((sweep_dir / "report.md").read_text(encoding="utf-8"))
    print(f"sweep {name}: {len(trials)} trials, {failed} failed, {seconds:.0f}s; see {sweep_dir}")
    return 1 if failed else 0


def log_report(target: MlflowTarget, parent: str | None, sweep_dir: Path) -> None:
    """The comparison report on the sweep's run: ``report.csv`` as an MLflow table
    (``sweep_report.json``) and ``report.md`` as the run's description (its overview page)."""
    import csv

    if parent is None or not target.enabled:
        return
    table = sweep_dir / "report.csv"
    if table.exists():
        with table.open(encoding="utf-8", newline="") as handle:
            log_table(target, parent, list(csv.DictReader(handle)), "sweep_report.json")
    report = sweep_dir / "report.md"
    if report.exists():
        text = report.read_text(encoding="utf-8")
        target.client().set_tag(parent, "mlflow.note.content", text[:60000])


def _loaded(sweep_dir: Path) -> list[Any]:
    from mtal_ray.sweep.results import load_trials

    return load_trials(sweep_dir)


def ray_cluster_cpus() -> float:
    """Logical CPUs of the connected Ray cluster."""
    import ray

    return float(ray.cluster_resources().get("CPU", 0.0))


def tune_experiment_dir(sweep_dir: Path, digest: str, concurrency: int) -> tuple[Path, str | None]:
    """The Tune experiment of a sweep space run ``concurrency`` trials at once, and a line
    to print when the sweep directory holds the same space's experiment run with another
    limit (or from before the limit was in the name): Tune restores an experiment with the
    limit it was created with, so a new experiment starts, in which finished trials return
    at once and unfinished ones resume from their run directories."""
    wanted = sweep_dir / f"tune-{digest}-c{concurrency}"
    if wanted.exists():
        return wanted, None
    earlier = sorted(
        p.name
        for p in sweep_dir.glob(f"tune-{digest}*")
        if p.is_dir() and re.fullmatch(rf"tune-{digest}(-c\d+)?", p.name)
    )
    if not earlier:
        return wanted, None
    return wanted, (
        f"{', '.join(earlier)}: this sweep's Tune state with another limit of trials at once "
        f"(Tune keeps an experiment's own limit on resume); running at most {concurrency} "
        f"now in a new experiment, {wanted.name}: finished trials return at once, unfinished "
        "ones resume from their run directories"
    )


def _fit(sweep: SweepConfig, tune_dir: Path, context: TrialContext, concurrency: int) -> int:
    """Run the Tune experiment in ``tune_dir`` (restored if it exists); returns #failed."""
    from ray import tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    trainable = tune.with_resources(make_trainable(context), {"CPU": sweep.trial_cpus})
    random_keys = frozenset(sweep.random)
    guard = _user_error_guard()
    if tune.Tuner.can_restore(str(tune_dir)):
        print(f"resuming the sweep from {tune_dir}")
        tuner = tune.Tuner.restore(
            str(tune_dir),
            trainable,
            resume_unfinished=True,
            resume_errored=sweep.retry_failed,
        )
    else:
        print(f"running at most {concurrency} trial(s) at once")

        def name_of(trial: Any) -> str:
            return trial_name(trial_params(trial.config), random_keys)

        tuner = tune.Tuner(
            trainable,
            param_space=tune_param_space(sweep),
            tune_config=tune.TuneConfig(
                num_samples=sweep.num_samples,
                # Tune ignores max_concurrent_trials for a given BasicVariantGenerator
                search_alg=BasicVariantGenerator(
                    random_state=sweep.search_seed, max_concurrent=concurrency
                ),
                trial_name_creator=name_of,
                trial_dirname_creator=name_of,
            ),
            run_config=tune.RunConfig(
                name=tune_dir.name,
                storage_path=str(tune_dir.parent),
                failure_config=tune.FailureConfig(max_failures=sweep.max_failures),
                stop=guard.stopper,
                callbacks=[guard],
                verbose=1,
            ),
        )
    results = tuner.fit()
    if guard.error is not None:  # the first user error of a trial, as one line
        raise guard.error
    return int(results.num_errors)


def _user_error_guard() -> Any:
    """A Tune callback that is also a stopper: after a trial fails with a user error
    (:class:`~mtal_ray.errors.MtalError`: a bad file, an infeasible budget...), which would
    fail the other trials the same way, no new trial starts and the sweep stops."""
    from ray import tune

    class Guard(tune.Callback):
        def __init__(self) -> None:
            self.error: MtalError | None = None
            guard = self

            class Stop(tune.Stopper):
                def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
                    return False

                def stop_all(self) -> bool:
                    return guard.error is not None

            self.stopper = Stop()

        def on_trial_error(
            self, iteration: int, trials: list[Any], trial: Any, **info: Any
        ) -> None:
            try:
                err = trial.get_pickled_error()
            except Exception:  # an unreadable error file: nothing to show
                return
            cause = user_error(err) if isinstance(err, BaseException) else None
            if cause is not None and self.error is None:
                self.error = cause
                print(f"stopping the sweep: trial {trial} failed: {cause}", flush=True)

    return Guard()
