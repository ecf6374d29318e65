"""``annotation.mode: label-studio``: each selected batch becomes tasks of a Label Studio
project; completed tasks come back as the round's annotation.

* :func:`check_label_studio` — before Ray starts: the token's variable is set and the server
  answers and accepts it (one line otherwise).
* :class:`LabelStudioAnnotator` — the loop's :class:`~mtal_ray.ports.Annotator`: creates
  the project if absent (labeling config from the run's tasks and label sets), imports each
  selected sentence once as a task with the model's predictions as a scored
  pre-annotation, then stops (``annotation.wait: stop``) or polls until the round is
  complete (``poll``).
* :func:`pull_round` — what ``mtal-ray import RUN_DIR --from label-studio`` and polling
  do: read the round's tasks, and when every one has a submitted annotation convert them
  to rows, validate and store them like a file import
  (:func:`~mtal_ray.driver.annotation.import_table`), and store each sentence's
  annotation time (``annotation_time.parquet``). A partial round stores nothing.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mtal_ray.data import take_ids
from mtal_ray.data.atomic import atomic_path, atomic_write_text
from mtal_ray.driver.annotation import (
    ANNOTATION_DIR,
    ANNOTATION_TIME,
    BATCH_TABLE,
    IMPORTED,
    MANIFEST,
    import_table,
    label_count,
    read_manifest,
    round_dir,
    training_labels,
)
from mtal_ray.errors import MtalError
from mtal_ray.label_studio.client import LabelStudioClient, client_from_config
from mtal_ray.label_studio.convert import from_annotation, labeling_config, to_task
from mtal_ray.ports import AnnotationRequest, Predictor
from mtal_ray.taskspec import TASK_SPECS

__all__ = [
    "ANNOTATION_TIME",
    "LabelStudioAnnotator",
    "RoundStatus",
    "check_label_studio",
    "pull_round",
]

#: Where the run's project lives (``RUN_DIR/annotation/label_studio.json``; no token).
PROJECT_FILE = "label_studio.json"


def check_label_studio(config: Any) -> None:
    """Fail in one line, before Ray starts, when Label Studio cannot be used."""
    if config.annotation.mode != "label-studio":
        return
    client_from_config(config.annotation.label_studio).whoami()


def run_key(run_dir: Path) -> str:
    """The run's name in task data (``mtal_run``): the folder, a digest of its path and the
    start of the run's own key (``state.json``), so a run started over (``--restart``) in
    the same folder does not take the earlier run's tasks for its own."""
    from mtal_ray.driver.state import load_state

    key = _folder_key(run_dir)
    state = load_state(Path(run_dir)) if Path(run_dir).exists() else None
    return f"{key}-{state.run_key[:8]}" if state is not None else key


def _folder_key(run_dir: Path) -> str:
    """The folder's name and a digest of its path (the whole ``mtal_run`` before runs had
    their own key in it)."""
    path = str(Path(run_dir).resolve())
    return f"{Path(run_dir).name}-{hashlib.sha1(path.encode()).hexdigest()[:8]}"


def _manifest_run(manifest: dict[str, Any], run_dir: Path) -> str:
    """The ``mtal_run`` of a round's tasks: as the manifest recorded it when the tasks were
    sent; rounds sent before it was recorded used the folder and path alone."""
    recorded = manifest.get("label_studio", {}).get("run")
    return str(recorded) if recorded else _folder_key(run_dir)


def _run_tasks(run_dir: Path, iteration: int) -> tuple[list[str], dict[str, list[str]]]:
    labels = training_labels(run_dir, iteration)
    if labels is None:
        raise MtalError(f"{run_dir}: no label inventory (labels.json) for the project's config")
    tasks = [t for t in TASK_SPECS if t in labels]
    return tasks, {t: sorted(labels[t]) for t in tasks}


def ensure_project(client: LabelStudioClient, settings: Any, run_dir: Path, iteration: int) -> int:
    """The project's id: found by id or title, created (or its config updated) if needed."""
    tasks, labels = _run_tasks(run_dir, iteration)
    config = labeling_config(tasks, labels)
    wanted = settings.project if settings.project is not None else Path(run_dir).name
    project = None
    if isinstance(wanted, int) or str(wanted).isdigit():
        project = client.project(int(wanted))
    else:
        for candidate in client.projects():
            if candidate.get("title") == wanted:
                project = candidate
                break
    if project is None:
        project = client.create_project(
            str(wanted), config, description=f"mtal_ray run {run_dir} ({', '.join(tasks)})"
        )
    elif (project.get("label_config") or "").strip() != config.strip():
        project = client.update_project(int(project["id"]), label_config=config)
    record = {"url": client.url, "project": int(project["id"]), "title": project.get("title")}
    atomic_write_text(
        Path(run_dir) / ANNOTATION_DIR / PROJECT_FILE, json.dumps(record, indent=1) + "\n"
    )
    return int(project["id"])


def _confidences(run_dir: Path, iteration: int, ids: list[str]) -> dict[str, dict[str, float]]:
    path = Path(run_dir) / "rounds" / f"round_{iteration}" / "confidence.parquet"
    if not path.is_file():
        return {}
    table = pq.read_table(path)
    wanted = set(ids)
    columns = [c for c in table.column_names if c.endswith(".ec")]
    out: dict[str, dict[str, float]] = {}
    for row in table.select(["id", *columns]).to_pylist():
        if row["id"] in wanted:
            out[row["id"]] = {c[: -len(".ec")]: row[c] for c in columns if row[c] is not None}
    return out


def _round_tasks(
    client: LabelStudioClient, project: int, run: str, iteration: int
) -> dict[str, dict[str, Any]]:
    """The project's tasks of this run's round, by sentence id (the latest one per id)."""
    out: dict[str, dict[str, Any]] = {}
    for task in client.tasks(project):
        data = task.get("data", {})
        if data.get("mtal_run") == run and data.get("mtal_round") == iteration:
            out[str(data["mtal_id"])] = task
    return out


def _submitted(task: dict[str, Any]) -> dict[str, Any] | None:
    """The task's latest submitted (not skipped) annotation."""
    done = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
    if not done:
        return None
    return max(done, key=lambda a: (str(a.get("updated_at") or ""), int(a.get("id") or 0)))


@dataclass
class RoundStatus:
    """Where a round stands in Label Studio; ``imported`` when it was validated and stored."""

    iteration: int
    done: int
    total: int
    project_url: str
    imported: pa.Table | None = None
    new_labels: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def line(self) -> str:
        return f"round {self.iteration}: {self.done}/{self.total} sentences annotated"


def pull_round(
    client: LabelStudioClient,
    run_dir: Path,
    iteration: int,
    *,
    allow_new_labels: bool = False,
) -> RoundStatus:
    """Pull the round's tasks; when all are annotated, validate and store them."""
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir, iteration)
    project = int(manifest["label_studio"]["project"])
    project_url = f"{client.url}/projects/{project}"
    ids: list[str] = manifest["ids"]
    tasks_per_id: dict[str, list[str]] = manifest["tasks"]
    found = _round_tasks(client, project, _manifest_run(manifest, run_dir), iteration)
    annotations = {sid: _submitted(found[sid]) for sid in ids if sid in found}
    done = [sid for sid in ids if annotations.get(sid) is not None]
    status = RoundStatus(iteration, len(done), len(ids), project_url)
    if len(done) < len(ids):
        return status
    batch = pq.read_table(round_dir(run_dir, iteration) / BATCH_TABLE, columns=["id", "tokens"])
    tokens = dict(
        zip(batch.column("id").to_pylist(), batch.column("tokens").to_pylist(), strict=True)
    )
    all_tasks = [t for t in TASK_SPECS if any(t in ts for ts in tasks_per_id.values())]
    where = {sid: f"{project_url}/data?task={found[sid]['id']}" for sid in ids}
    rows, times = [], []
    for sid in ids:
        annotation = annotations[sid]
        assert annotation is not None
        rows.append(
            from_annotation(
                annotation.get("result") or [],
                sid=sid,
                tokens=tokens[sid],
                tasks=tasks_per_id[sid],
                where=where[sid],
            )
        )
        lead = annotation.get("lead_time")
        times.append(
            {
                "id": sid,
                "tasks": list(tasks_per_id[sid]),
                "seconds": float(lead) if lead is not None else None,
                "n_tokens": len(tokens[sid]),
                "label_studio_task": int(found[sid]["id"]),
                "label_studio_annotation": int(annotation.get("id") or 0),
                **{
                    f"labels.{t}": label_count(t, rows[-1]) if t in tasks_per_id[sid] else None
                    for t in all_tasks
                },
            }
        )
    fields = [pa.field("id", pa.string()), pa.field("tokens", pa.list_(pa.string()))]
    for task in all_tasks:
        fields += [pa.field(name, kind) for name, kind in TASK_SPECS[task].columns]
    schema = pa.schema(fields)
    table = pa.Table.from_pylist(
        [{f.name: row.get(f.name) for f in schema} for row in rows], schema=schema
    )
    # the timings first: the import's imported.parquet marks the round annotated, so a
    # kill between the two must not leave an annotated round without its measured time
    with atomic_path(round_dir(run_dir, iteration) / ANNOTATION_TIME) as tmp:
        pq.write_table(pa.Table.from_pylist(times), tmp)
    accepted: dict[str, dict[str, int]] = {}
    status.imported = import_table(
        run_dir,
        iteration,
        table,
        lambda sid: where[sid],
        allow_new_labels=allow_new_labels,
        new_labels=accepted,
    )
    status.new_labels = accepted
    return status


class LabelStudioAnnotator:
    """Sends each round's selection to Label Studio and waits for (or polls) its annotation."""

    def __init__(
        self,
        settings: Any,
        predictor: Predictor | None = None,
        *,
        wait: str = "stop",
        poll_seconds: float = 30.0,
        echo: Callable[[str], None] | None = None,
        client: LabelStudioClient | None = None,
    ) -> None:
        self.settings = settings
        self.predictor = predictor
        self.wait = wait
        self.poll_seconds = poll_seconds
        self.echo = echo
        self._client = client

    @property
    def client(self) -> LabelStudioClient:
        if self._client is None:
            self._client = client_from_config(self.settings)
        return self._client

    def _say(self, line: str) -> None:
        if self.echo is not None:
            self.echo(line)
        else:
            from mtal_ray.logs import progress

            progress(line)

    def annotate(self, request: AnnotationRequest) -> str | None:
        folder = round_dir(request.run_dir, request.iteration)
        if (folder / IMPORTED).exists():
            return None
        project = self._send(request)
        if self.wait == "poll":
            return self._poll(request)
        n = len(request.tasks_per_id)
        return (
            f"round {request.iteration}: {n} sentences wait for annotation in Label Studio "
            f"({self.client.url}/projects/{project}, model predictions pre-annotated). "
            f"Annotate them there, then run: mtal-ray import {request.run_dir} --from "
            "label-studio  (it validates them and resumes the run)."
        )

    def _send(self, request: AnnotationRequest) -> int:
        """Create the project if needed and import the round's sentences not yet in it."""
        run_dir, iteration = Path(request.run_dir), request.iteration
        folder = round_dir(run_dir, iteration)
        tasks_per_id = {sid: list(ts) for sid, ts in request.tasks_per_id.items()}
        ids = list(tasks_per_id)
        project = ensure_project(self.client, self.settings, run_dir, iteration)
        if not (folder / MANIFEST).exists():
            folder.mkdir(parents=True, exist_ok=True)
            batch = take_ids(request.rows, ids).select(["id", "tokens"])
            with atomic_path(folder / BATCH_TABLE) as tmp:
                pq.write_table(batch, tmp)
            manifest = {
                "iteration": iteration,
                "format": request.corpus_format,
                "file": None,
                "ids": ids,
                "tasks": tasks_per_id,
                "label_studio": {
                    "url": self.client.url,
                    "project": project,
                    "run": run_key(run_dir),
                },
            }
            atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=1) + "\n")
        run = _manifest_run(read_manifest(run_dir, iteration), run_dir)
        present = _round_tasks(self.client, project, run, iteration)
        missing = [sid for sid in ids if sid not in present]
        if not missing:
            return project
        rows = take_ids(request.rows, missing).select(["id", "tokens"])
        predictions: dict[str, dict[str, Any]] = {}
        if self.predictor is not None and request.checkpoint is not None:
            predicted = self.predictor.predict(request.checkpoint, rows)
            if predicted is not None:
                predictions = {r["id"]: r for r in predicted.to_pylist()}
        confidences = _confidences(run_dir, iteration, missing)
        all_tasks, _ = _run_tasks(run_dir, iteration)
        tasks = [
            to_task(
                row,
                tasks_per_id[row["id"]],
                all_tasks,
                run=run,
                iteration=iteration,
                prediction=predictions.get(row["id"]),
                confidence=confidences.get(row["id"], {}),
                model_version=f"{run}/round_{iteration}",
            )
            for row in rows.to_pylist()
        ]
        self.client.import_tasks(project, tasks)
        return project

    def _poll(self, request: AnnotationRequest) -> str | None:
        last = None
        while True:
            try:
                status = pull_round(self.client, request.run_dir, request.iteration)
            except MtalError as err:  # a completed round that does not validate: fix, retry
                line = f"round {request.iteration}: not imported yet: {err}"
            else:
                if status.imported is not None:
                    self._say(f"{status.line}: imported")
                    return None
                line = status.line
            if line != last:
                self._say(line)
                last = line
            time.sleep(self.poll_seconds)
