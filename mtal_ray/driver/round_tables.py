"""A round's confidences and selection as small tables for the tracking UI.

* :func:`confidence_summary` — per task and confidence column (``ec``, ``da``), the
  distribution over the pool (mean, quantiles) beside the same numbers over the selected
  sentences: did the selector pick the uncertain ones, on which task?
* :func:`selection_rows` — one row per selected sentence: id, the tasks it is annotated
  on, its confidences.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

_KINDS = ("ec", "da")


def _stats(values: np.ndarray) -> dict[str, float | int | None]:
    if values.size == 0:
        return {"n": 0, "mean": None, "min": None, "p10": None, "median": None, "max": None}
    return {
        "n": int(values.size),
        "mean": round(float(values.mean()), 6),
        "min": round(float(values.min()), 6),
        "p10": round(float(np.quantile(values, 0.1)), 6),
        "median": round(float(np.median(values)), 6),
        "max": round(float(values.max()), 6),
    }


def _read(confidence_table: str | Path, selection: str | Path | None) -> tuple[Any, dict]:
    table = pq.read_table(confidence_table)
    payload: dict[str, Any] = {}
    if selection is not None and Path(selection).exists():
        payload = json.loads(Path(selection).read_text(encoding="utf-8"))
    return table, payload


def confidence_summary(
    confidence_table: str | Path, selection: str | Path | None = None
) -> list[dict[str, Any]]:
    """Rows ``{task, confidence, n, mean, …, selected_n, selected_mean, selected_median}``."""
    table, payload = _read(confidence_table, selection)
    chosen = set(payload.get("ids") or [])
    ids = table.column("id").to_pylist()
    mask = np.array([sid in chosen for sid in ids], dtype=bool)
    rows = []
    for name in table.column_names:
        task, _, kind = name.rpartition(".")
        if kind not in _KINDS or not task:
            continue
        values = table.column(name).to_numpy(zero_copy_only=False).astype(float)
        values = np.where(np.isfinite(values), values, np.nan)
        valid = ~np.isnan(values)
        pool = _stats(values[valid])
        picked = _stats(values[valid & mask])
        rows.append(
            {
                "task": task,
                "confidence": kind,
                **pool,
                "selected_n": picked["n"],
                "selected_mean": picked["mean"],
                "selected_median": picked["median"],
            }
        )
    return rows


def selection_rows(confidence_table: str | Path, selection: str | Path) -> list[dict[str, Any]]:
    """One row per selected sentence: ``id``, ``tasks`` and its confidence columns."""
    table, payload = _read(confidence_table, selection)
    tasks = payload.get("tasks") or {}
    wanted = [sid for sid in payload.get("ids") or list(tasks)]
    columns = [c for c in table.column_names if c.rpartition(".")[2] in _KINDS]
    by_id = {
        row["id"]: row for row in table.select(["id", *columns]).to_pylist() if row["id"] in tasks
    }
    out = []
    for rank, sid in enumerate(wanted):
        row: dict[str, Any] = {"rank": rank, "id": sid, "tasks": ",".join(tasks.get(sid, []))}
        row.update({c: by_id.get(sid, {}).get(c) for c in columns})
        out.append(row)
    return out
