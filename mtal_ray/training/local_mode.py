"""Checkpoints of a training in the calling process (``training.num_workers: 0``).

With no worker, the training function runs in the calling process (the launcher's driver,
a sweep's trial actor) without Ray Train, so nothing keeps what it reports. The loop
therefore keeps the checkpoints itself, as Ray Train's checkpoint manager would: each one is written
in ``<run>/local/`` (:func:`staging_dir`) and named ``checkpoint_<step>`` with the metrics
it was reported with (``metrics.json``, :func:`keep_checkpoint`), and only the
``training.checkpoints_to_keep`` best by ``dev_select`` stay (the earlier step on a tie, the
one the loop and the driver call the best). The driver reads them back with
:func:`reported_checkpoints` and picks the best exactly as it does from Ray Train's result.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

#: The folder of the local checkpoints under the training's Ray Train run directory.
LOCAL_DIR = "local"
METRICS_FILE = "metrics.json"
_PREFIX = "checkpoint_"


def _rank(metrics: dict[str, Any]) -> tuple[float, int]:
    score = float(metrics.get("dev_select", -math.inf))
    return (score if math.isfinite(score) else -math.inf, -int(metrics.get("step", 0)))


def checkpoints_to_prune(entries: list[tuple[Path, dict[str, Any]]], keep: int) -> list[Path]:
    """The checkpoints beyond the ``keep`` best (by ``dev_select``; the earlier step first on
    a tie, as :meth:`TrainingProgress.record` and the driver choose). ``keep`` < 1 keeps
    them all."""
    if keep < 1 or len(entries) <= keep:
        return []
    ranked = sorted(entries, key=lambda entry: _rank(entry[1]), reverse=True)
    return [path for path, _ in ranked[keep:]]


def staging_dir(local_dir: Path, step: int) -> Path:
    """An empty folder in ``local_dir`` to write the checkpoint of ``step`` into (its name is
    not a checkpoint's until :func:`keep_checkpoint` renames it: no copy of the weights)."""
    staging = local_dir / f".{_PREFIX}{step:06d}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def keep_checkpoint(staging: Path, metrics: dict[str, Any], keep: int) -> Path:
    """Give the checkpoint written in ``staging`` (:func:`staging_dir`) its ``metrics`` and
    its name, then prune its folder to the ``keep`` best. A folder with a checkpoint's name
    is always whole. Returns it (gone again if it is not among the ``keep`` best)."""
    final = staging.parent / f"{_PREFIX}{int(metrics['step']):06d}"
    (staging / METRICS_FILE).write_text(json.dumps(metrics, default=float), encoding="utf-8")
    shutil.rmtree(final, ignore_errors=True)
    staging.rename(final)
    for stale in checkpoints_to_prune(reported_checkpoints(staging.parent), keep):
        shutil.rmtree(stale, ignore_errors=True)
    return final


def reported_checkpoints(local_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """The complete checkpoints in ``local_dir`` with their metrics, oldest step first."""
    if not local_dir.is_dir():
        return []
    found = []
    for path in sorted(local_dir.glob(f"{_PREFIX}*")):
        try:
            metrics = json.loads((path / METRICS_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(metrics, dict):
            found.append((path, metrics))
    return found
