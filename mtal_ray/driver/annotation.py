"""Getting a selection annotated: the oracle (simulation) and people (export / import).

*Oracle* mode reveals the gold labels of the selected ids for the tasks the selection asked
for: the labeled table is the gold training split with every task column nulled on rows not
annotated for that task.

*Human* mode writes the round's batch to ``RUN_DIR/annotation/round_N/`` in the corpus's
own format, with the model's predictions pre-filled for the requested tasks (other tasks
left unannotated), plus ``manifest.json``. People correct the file(s) and hand them back
with ``mtal-ray import RUN_DIR FILES…``, which validates them (same sentences, every
requested task annotated, well-formed labels — otherwise one error naming file and line,
and the run's state is unchanged) and stores ``imported.parquet`` next to the export.

Annotating ``re`` implies annotating ``ner`` (relations are defined over the entities).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mtal_ray.data import load_corpus, split_path, take_ids, write_split
from mtal_ray.data.atomic import atomic_path, atomic_write_text
from mtal_ray.data.schema import TASK_COLUMNS, annotated_mask
from mtal_ray.data.slu import TASK_FILES as SLU_TASK_FILES
from mtal_ray.errors import DataFormatError, MtalError
from mtal_ray.taskspec import with_dependencies as with_dependencies  # re-exported

ANNOTATION_DIR = "annotation"
MANIFEST = "manifest.json"
IMPORTED = "imported.parquet"


def mask_tasks(table: pa.Table, labeled: dict[str, list[str]], tasks: list[str]) -> pa.Table:
    """``table`` restricted to labeled rows, with each task's columns nulled where the row is
    not labeled for that task."""
    ids = sorted({sid for t in tasks for sid in labeled.get(t, [])})
    sub = take_ids(table, ids)
    row_ids = sub.column("id").to_pylist()
    for task in tasks:
        keep = set(labeled.get(task, []))
        mask = pa.array([sid in keep for sid in row_ids])
        for name in TASK_COLUMNS[task]:
            if name not in sub.column_names:
                continue
            column = sub.column(name)
            nulls = pa.nulls(sub.num_rows, type=column.type)
            sub = sub.set_column(
                sub.column_names.index(name), name, pc.if_else(mask, column, nulls)
            )
    return sub


def round_dir(run_dir: Path, iteration: int) -> Path:
    """Where the human-annotation batch of ``iteration`` lives."""
    return Path(run_dir) / ANNOTATION_DIR / f"round_{iteration}"


def export_batch(
    run_dir: Path,
    iteration: int,
    pool_rows: pa.Table,
    tasks_per_id: dict[str, list[str]],
    predictions: pa.Table | None,
    fmt: str,
) -> Path:
    """Write the batch to annotate (predictions pre-filled) and its manifest; returns the file."""
    folder = round_dir(run_dir, iteration)
    ids = list(tasks_per_id)
    batch = take_ids(pool_rows, ids)
    all_tasks = sorted({t for ts in tasks_per_id.values() for t in ts})
    # Start from the sentence only (gold labels, if the pool has any, are never shown).
    columns: dict[str, Any] = {"id": batch.column("id"), "tokens": batch.column("tokens")}
    if "conllu.raw" in batch.column_names:
        columns["conllu.raw"] = batch.column("conllu.raw")
    out = pa.table(columns)
    if predictions is not None:
        pred = take_ids(predictions, ids)
        wanted = {t: [t in tasks_per_id[sid] for sid in ids] for t in all_tasks}
        for task in all_tasks:
            for name in TASK_COLUMNS[task]:
                if name in pred.column_names:
                    col = pred.column(name)
                    out = out.append_column(
                        name,
                        pc.if_else(pa.array(wanted[task]), col, pa.nulls(len(ids), col.type)),
                    )
    target = split_path(folder, "batch", fmt)
    write_split(out, target, fmt)
    manifest = {
        "iteration": iteration,
        "format": fmt,
        "file": str(target.relative_to(folder)),
        "ids": ids,
        "tasks": tasks_per_id,
    }
    atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    return target


def _row_lines(table: pa.Table, fmt: str) -> list[int]:
    """First line of each row in its file (for messages)."""
    if fmt == "conllu" and "conllu.raw" in table.column_names:
        lines, current = [], 1
        for raw in table.column("conllu.raw").to_pylist():
            lines.append(current)
            current += len(str(raw).split("\n")) + 1
        return lines
    return list(range(1, table.num_rows + 1))


def read_manifest(run_dir: Path, iteration: int) -> dict[str, Any]:
    """The manifest of a round's export; a clear error when there is none."""
    path = round_dir(run_dir, iteration) / MANIFEST
    if not path.exists():
        raise MtalError(f"{run_dir}: round {iteration} has no annotation batch waiting ({path})")
    return json.loads(path.read_text(encoding="utf-8"))


def import_annotations(run_dir: Path, iteration: int, files: list[Path]) -> pa.Table:
    """Validate returned annotation files against the round's manifest and store them.

    Raises
    ------
    DataFormatError
        Naming the file and line of the first problem; nothing is stored then.
    """
    manifest = read_manifest(run_dir, iteration)
    fmt = manifest["format"]
    expected: list[str] = manifest["ids"]
    tasks_per_id: dict[str, list[str]] = manifest["tasks"]
    exported = load_corpus(round_dir(run_dir, iteration) / manifest["file"], fmt).splits
    exported_table = next(iter(exported.values()))
    if fmt == "slu":  # no ids in the files: rows follow the manifest's order
        exported_table = exported_table.set_column(0, "id", pa.array(expected, pa.string()))
    exported_tokens = dict(
        zip(
            exported_table.column("id").to_pylist(),
            exported_table.column("tokens").to_pylist(),
            strict=True,
        )
    )
    if not files:
        raise MtalError("give the annotated file(s) to import")
    tables: list[pa.Table] = []
    seen: dict[str, tuple[Path, int]] = {}
    for file in files:
        file = Path(file)
        corpus = load_corpus(file, fmt, strict_bio=True)
        for table in corpus.splits.values():
            lines = _row_lines(table, fmt)
            if fmt == "slu":
                # seq.in/seq.out/label carry no ids: rows map to the manifest by position.
                if table.num_rows != len(expected):
                    raise DataFormatError(
                        file, None, f"{table.num_rows} utterances, the batch has {len(expected)}"
                    )
                table = table.set_column(0, "id", pa.array(expected, pa.string()))
            for i, (sid, tokens) in enumerate(
                zip(table.column("id").to_pylist(), table.column("tokens").to_pylist(), strict=True)
            ):
                if sid not in exported_tokens:
                    raise DataFormatError(file, lines[i], f"sentence {sid!r} is not in this batch")
                if sid in seen:
                    raise DataFormatError(
                        file, lines[i], f"sentence {sid!r} given twice (also {seen[sid][0]})"
                    )
                if tokens != exported_tokens[sid]:
                    raise DataFormatError(
                        file, lines[i], f"sentence {sid!r}: the words differ from the exported ones"
                    )
                seen[sid] = (file, lines[i])
            requested = {t for ts in tasks_per_id.values() for t in ts}
            for task in [t for t in TASK_COLUMNS if t in requested]:
                annotated = annotated_mask(table, task)
                for i, sid in enumerate(table.column("id").to_pylist()):
                    if task in tasks_per_id.get(sid, []) and not annotated[i]:
                        where = file
                        if fmt == "slu":
                            where = file / SLU_TASK_FILES[task]
                        raise DataFormatError(
                            where, lines[i], f"sentence {sid!r} is not annotated for task {task!r}"
                        )
            tables.append(table)
    missing = [sid for sid in expected if sid not in seen]
    if missing:
        raise MtalError(
            f"{len(missing)} sentence(s) of the batch are missing from the imported files, "
            f"e.g. {missing[:3]}"
        )
    merged = pa.concat_tables(
        [t.select([c for c in t.column_names if c in _keep(t)]) for t in tables],
        promote_options="default",
    )
    target = round_dir(run_dir, iteration) / IMPORTED
    with atomic_path(target) as tmp:
        pq.write_table(merged, tmp)
    return merged


def _keep(table: pa.Table) -> set[str]:
    keep = {"id", "tokens"}
    for cols in TASK_COLUMNS.values():
        keep.update(c for c in cols if c in table.column_names)
    return keep


def imported_annotations(run_dir: Path) -> pa.Table | None:
    """Every imported human annotation of the run (later rounds override earlier ones)."""
    tables = [
        pq.read_table(p)
        for p in sorted((Path(run_dir) / ANNOTATION_DIR).glob(f"round_*/{IMPORTED}"))
    ]
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="default")
