"""Finished sweep trials kept in the repository, so a long study carries on across machines.

A study sweep (``validity.py``, ``stopping.py``) runs for many hours on 2 cores, longer than
one working session, and its sweep directory (``runs/``: checkpoints, Ray Tune state,
MLflow store) does not travel. What the study needs of a finished trial is small: its record
(``trial.json``), its per-iteration rows (``summary.json``), its resolved config, its AL
state (labeled ids per task, dev ids) and its first selection. :func:`save` copies those
files of every finished trial into an archive folder under ``benchmarks/results/trials/``
(committed with the results); :func:`restore` copies them back into a fresh sweep
directory, where :func:`mtal_ray.sweep.trial.run_trial` sees a trial recorded as finished and
returns at once, so only the missing trials run.

A trial is restored only when it would run under exactly the settings it ran under: its
archived ``config.json`` is compared with the config the current sweep resolves for the
same parameters, ignoring where things live (paths, MLflow, ``al.run_dir``), how many
CPUs they get, and settings the code gained after the trial ran. A differing trial is
reported and not restored (it runs again).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from mtal_ray.data.atomic import atomic_write_text

#: What an archived trial keeps (paths relative to the trial folder).
FILES = ("trial.json", "summary.json", "config.json", "state.json", "rounds/round_0/selection.json")
#: Kept too: every round's selection (which sentences each round added, for the costs of
#: ``validity_cost.py``); added to trials archived before they were kept.
SELECTIONS = "rounds/round_*/selection.json"
#: Config keys that say where or on how many CPUs a trial ran, not what it computed.
PLACEMENT = {
    ("tracking",),
    ("sweep",),
    ("al", "run_dir"),
    ("training", "cpus_per_worker"),
    ("scoring", "concurrency"),
    ("scoring", "cpus_per_actor"),
    ("scoring", "compute"),
    ("scoring", "threads_per_actor"),
}
#: The post-hoc results (cross-task scores, OE) kept beside the trials.
POSTHOC = "posthoc.json"


def comparable(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` (a resolved experiment config as JSON) without placement keys, and with the
    corpus named by its folder name rather than its absolute path."""
    out = json.loads(json.dumps(config, default=str))
    for path in PLACEMENT:
        node = out
        for part in path[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(path[-1], None)
    data = out.get("data")
    if isinstance(data, dict) and data.get("path"):
        data["path"] = Path(str(data["path"])).name
    return out


def resolved_config(sweep_config: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The experiment config (JSON) the sweep ``sweep_config`` runs for ``params``."""
    from mtal_ray.config import ExperimentConfig
    from mtal_ray.sweep.space import trial_raw_config

    base = {k: v for k, v in sweep_config.items() if k != "sweep"}
    raw = trial_raw_config(base, params, {})
    return ExperimentConfig.model_validate(raw).model_dump(mode="json")


def differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted keys at which the JSON values ``a`` and ``b`` differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for key in sorted(set(a) | set(b)):
            out += differences(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [prefix.rstrip(".") or "(config)"]


def only_known(wanted: Any, archived: Any) -> Any:
    """``wanted`` without the keys ``archived`` does not have: settings added to the code
    after the trial ran (their defaults keep the old behaviour, as the driver's own config
    digest assumes: it leaves defaults out)."""
    if isinstance(wanted, dict) and isinstance(archived, dict):
        return {k: only_known(v, archived[k]) for k, v in wanted.items() if k in archived}
    return wanted


def _finished(trial_dir: Path) -> bool:
    from mtal_ray.sweep.results import load_trial

    trial = load_trial(trial_dir)
    return trial is not None and trial.record.status == "finished" and bool(trial.rows)


def save(sweep_dir: Path, archive: Path) -> list[str]:
    """Copy every finished trial of ``sweep_dir`` not yet in ``archive``; their names."""
    trials = Path(sweep_dir) / "trials"
    saved: list[str] = []
    if not trials.is_dir():
        return saved
    for trial_dir in sorted(p for p in trials.iterdir() if p.is_dir()):
        target = Path(archive) / trial_dir.name
        if not _finished(trial_dir):
            continue
        selections = [str(p.relative_to(trial_dir)) for p in trial_dir.glob(SELECTIONS)]
        if (target / "trial.json").exists():  # archived before: add what it lacks
            for name in selections:
                if not (target / name).exists():
                    (target / name).parent.mkdir(parents=True, exist_ok=True)
                    atomic_write_text(target / name, (trial_dir / name).read_text("utf-8"))
            continue
        tmp = target.with_name(target.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        for name in (*FILES, *selections):
            source = trial_dir / name
            if source.exists():
                (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, tmp / name)
        tmp.rename(target)  # a trial is archived whole or not at all
        saved.append(trial_dir.name)
    return saved


def classify(archive: Path, sweep_config: dict[str, Any]) -> dict[str, list[str]]:
    """Each archived trial folder's name -> the config keys in which it differs from what
    ``sweep_config`` resolves for its parameters (empty: it would be restored)."""
    out: dict[str, list[str]] = {}
    if not Path(archive).is_dir():
        return out
    for folder in sorted(p for p in Path(archive).iterdir() if p.is_dir()):
        if folder.name.endswith(".partial") or not (folder / "config.json").exists():
            continue
        record = json.loads((folder / "trial.json").read_text(encoding="utf-8"))
        archived = comparable(json.loads((folder / "config.json").read_text(encoding="utf-8")))
        wanted = comparable(resolved_config(sweep_config, dict(record.get("params") or {})))
        out[folder.name] = differences(archived, only_known(wanted, archived))
    return out


def restore(archive: Path, sweep_dir: Path, sweep_config: dict[str, Any]) -> tuple[list, list]:
    """Copy archived trials into ``sweep_dir/trials`` where the sweep has none of that name
    and the trial's settings match ``sweep_config``'s. Returns (restored names, skipped
    ``name: differing keys`` lines)."""
    restored: list[str] = []
    skipped: list[str] = []
    for name, keys in classify(archive, sweep_config).items():
        target = Path(sweep_dir) / "trials" / name
        if (target / "trial.json").exists():
            continue
        if keys:
            skipped.append(f"{name}: {', '.join(keys[:6])}")
            continue
        shutil.copytree(Path(archive) / name, target, dirs_exist_ok=True)
        restored.append(name)
    return restored, skipped


def load_posthoc(archive: Path) -> dict[str, Any]:
    """The archived post-hoc results (trial key → value)."""
    path = Path(archive) / POSTHOC
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def save_posthoc(archive: Path, cache: dict[str, Any]) -> None:
    """Write the post-hoc results beside the archived trials (atomically)."""
    Path(archive).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(archive) / POSTHOC, json.dumps(cache, indent=1, sort_keys=True) + "\n")
