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
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mtal_ray.data import load_corpus, split_path, take_ids, write_split
from mtal_ray.data.atomic import atomic_path, atomic_write_text
from mtal_ray.data.conll import RAW_COLUMN as CONLL_RAW
from mtal_ray.data.conll import row_lines as conll_row_lines
from mtal_ray.data.conll import table_columns
from mtal_ray.data.conllu import tree_problem
from mtal_ray.data.schema import TASK_COLUMNS, annotated_mask
from mtal_ray.data.slu import TASK_FILES as SLU_TASK_FILES
from mtal_ray.data.spans import bio_errors
from mtal_ray.data.vocab import label_counts
from mtal_ray.errors import DataFormatError, MtalError
from mtal_ray.selection.cost_fit import LabelKind, TimedSentence
from mtal_ray.taskspec import task_spec
from mtal_ray.taskspec import with_dependencies as with_dependencies  # re-exported

ANNOTATION_DIR = "annotation"
MANIFEST = "manifest.json"
IMPORTED = "imported.parquet"
#: The run's training label set per task (what an imported batch's labels are held to).
LABELS_FILE = "labels.json"
#: Formats whose files carry no sentence ids: imported rows map to the manifest by position.
_POSITIONAL = ("slu", "conll")


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
    for raw in ("conllu.raw", CONLL_RAW):  # the sentence's other columns, to write it back
        if raw in batch.column_names:
            columns[raw] = batch.column(raw)
    out = pa.table(columns)
    conll_columns = table_columns(batch) if fmt == "conll" else None
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
    write_split(out, target, fmt, conll_columns)
    manifest = {
        "iteration": iteration,
        "format": fmt,
        "file": str(target.relative_to(folder)),
        "ids": ids,
        "tasks": tasks_per_id,
    }
    if conll_columns is not None:
        manifest["columns"] = conll_columns
    atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    return target


def _row_lines(table: pa.Table, fmt: str) -> list[int]:
    """First line of each row in its file (for messages)."""
    if fmt == "conll":
        return conll_row_lines(table)
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


def training_labels(run_dir: Path, iteration: int) -> dict[str, set[str]] | None:
    """The training label set per task: every label of the run's training and dev splits
    (``RUN_DIR/labels.json``, written when the run started); for older runs, the
    vocabularies of the model trained in ``iteration``; ``None`` when neither exists."""
    from mtal_ray.driver.state import load_state

    inventory = Path(run_dir) / LABELS_FILE
    if inventory.is_file():
        data = json.loads(inventory.read_text(encoding="utf-8"))
        return {task: set(labels) for task, labels in data.items()}

    state = load_state(Path(run_dir))
    if state is None or iteration >= len(state.rounds):
        return None
    checkpoint = state.rounds[iteration].checkpoint
    meta = Path(run_dir, checkpoint, "meta.json") if checkpoint else None
    if meta is None or not meta.is_file():
        return None
    vocabs = json.loads(meta.read_text(encoding="utf-8")).get("vocabs", {})
    return {task: set(vocab["labels"]) for task, vocab in vocabs.items()}


def _new_labels(
    table: pa.Table, tasks: list[str], known: dict[str, set[str]]
) -> dict[str, dict[str, tuple[str, int, int]]]:
    """Per task, each label of ``table`` not in ``known``: (first sentence id, its row, count)."""
    found: dict[str, dict[str, tuple[str, int, int]]] = {}
    ids = table.column("id").to_pylist()
    for task in tasks:
        if task not in known:
            continue
        for i, sid in enumerate(ids):
            for label, count in label_counts(table.slice(i, 1), task).items():
                if label not in known[task]:
                    first = found.setdefault(task, {}).get(label, (sid, i, 0))
                    found[task][label] = (first[0], first[1], first[2] + count)
    return found


def import_annotations(
    run_dir: Path,
    iteration: int,
    files: list[Path],
    *,
    allow_new_labels: bool = False,
    labels: dict[str, set[str]] | None = None,
    new_labels: dict[str, dict[str, int]] | None = None,
) -> pa.Table:
    """Validate returned annotation files against the round's manifest and store them.

    Parameters
    ----------
    run_dir, iteration
        The run and the round whose batch is returned.
    files
        The annotated file(s) (a split folder for ``slu``).
    allow_new_labels
        Accept labels that the model of this round was not trained with (otherwise they
        are an error naming file, line and label).
    labels
        The training label set per task; default: the vocabularies of this round's
        checkpoint (no check when the run has none).
    new_labels
        Filled with the accepted new labels per task and their counts.

    Raises
    ------
    DataFormatError
        Naming the file and line of the first problem (different words, a task not
        annotated, malformed labels, a dependency tree that is not a tree, a label not in
        the training label set); nothing is stored then.
    """
    manifest = read_manifest(run_dir, iteration)
    fmt = manifest["format"]
    expected: list[str] = manifest["ids"]
    columns = manifest.get("columns")
    known = labels if labels is not None else training_labels(run_dir, iteration)
    accepted: dict[str, dict[str, int]] = {}
    exported_tokens = _exported_tokens(run_dir, iteration, manifest)
    if not files:
        raise MtalError("give the annotated file(s) to import")
    tables: list[pa.Table] = []
    seen: dict[str, tuple[Path, int]] = {}
    for file in files:
        file = Path(file)
        corpus = load_corpus(file, fmt, strict_bio=True, columns=columns)
        for table in corpus.splits.values():
            lines = _row_lines(table, fmt)
            if fmt in _POSITIONAL:
                # seq.in/seq.out/label carry no ids: rows map to the manifest by position.
                if table.num_rows != len(expected):
                    raise DataFormatError(
                        file, None, f"{table.num_rows} utterances, the batch has {len(expected)}"
                    )
                table = table.set_column(0, "id", pa.array(expected, pa.string()))

            def where(
                i: int, task: str | None = None, file: Path = file, lines: list[int] = lines
            ) -> tuple[Path, int]:
                if task is not None and fmt == "slu":
                    return file / SLU_TASK_FILES[task], lines[i]
                return file, lines[i]

            _check_rows(
                table,
                where,
                manifest,
                exported_tokens,
                seen,
                known,
                allow_new_labels=allow_new_labels,
                accepted=accepted,
            )
            tables.append(table)
    return _store(run_dir, iteration, tables, expected, seen, accepted, new_labels)


def import_table(
    run_dir: Path,
    iteration: int,
    table: pa.Table,
    where: Callable[[str], str],
    *,
    allow_new_labels: bool = False,
    labels: dict[str, set[str]] | None = None,
    new_labels: dict[str, dict[str, int]] | None = None,
) -> pa.Table:
    """Validate a round's annotation given as rows (``id``, ``tokens``, task columns) and
    store it, exactly like :func:`import_annotations` does for files.

    ``where(sentence_id)`` names the place of a sentence in errors (for an annotation
    tool: the task's address). Besides the file import's checks (same sentences and words,
    every requested task annotated, labels in the training label set), dependency trees
    and BIO tags are checked here, since no corpus reader has seen the rows.
    """
    manifest = read_manifest(run_dir, iteration)
    known = labels if labels is not None else training_labels(run_dir, iteration)
    accepted: dict[str, dict[str, int]] = {}
    seen: dict[str, tuple[Path, int]] = {}
    ids = table.column("id").to_pylist()

    def located(i: int, task: str | None = None) -> tuple[Path, int]:
        return Path(where(ids[i])), 0

    for i, sid in enumerate(ids):
        row = {c: table.column(c)[i].as_py() for c in table.column_names}
        heads = row.get("dp.head")
        if heads is not None:
            problem = tree_problem(heads)
            if problem is not None:
                raise DataFormatError(where(sid), None, f"sentence {sid!r}: {problem[1]}")
        for column in ("ner.tags", "sf.tags"):
            tags = row.get(column)
            if tags is not None:
                problems = bio_errors(tags)
                if problems:
                    word, problem = problems[0]
                    raise DataFormatError(
                        where(sid), None, f"sentence {sid!r}, word {word + 1}: {problem}"
                    )
    _check_rows(
        table,
        located,
        manifest,
        _exported_tokens(run_dir, iteration, manifest),
        seen,
        known,
        allow_new_labels=allow_new_labels,
        accepted=accepted,
        locate=lambda i: where(ids[i]),
    )
    return _store(run_dir, iteration, [table], manifest["ids"], seen, accepted, new_labels)


#: The sentences of a batch exported for a tool (``id``, ``tokens``), beside its manifest.
BATCH_TABLE = "batch.parquet"
#: Per sentence of a round annotated in a tool: ``id``, ``tasks`` asked, ``seconds`` spent,
#: ``n_tokens`` and ``labels.<task>`` (its number of labels on each task asked).
ANNOTATION_TIME = "annotation_time.parquet"


def label_count(task: str, row: Mapping[str, Any]) -> int:
    """How many labels ``row`` holds for ``task``: entity spans of a tagging task, relations
    of a relation task, one per word of a tree, 1 for a sentence label."""
    spec = task_spec(task)
    values = row.get(spec.label_column)
    if spec.kind == "sentence":
        return 1
    if spec.kind == "tagging":
        return sum(1 for tag in values or [] if str(tag).startswith("B-"))
    return len(values or [])


def label_cost_table(rows: Iterable[Mapping[str, Any]], tasks: list[str]) -> Any:
    """A cost table (:func:`mtal_ray.selection.load_table`) of labeled ``rows``: ``id``,
    ``n_tokens`` and, per token-level task (one with entity spans), ``<task>.n_entities``
    counted in the row's labels rather than predicted by a model."""
    from mtal_ray.selection import load_table

    rows = list(rows)
    spans = [t for t in tasks if task_spec(t).spans]
    columns: dict[str, Any] = {
        "id": [str(r["id"]) for r in rows],
        "n_tokens": [len(r.get("tokens") or []) for r in rows],
    }
    for task in spans:
        columns[f"{task}.n_entities"] = [label_count(task, r) for r in rows]
    table = pa.table(columns).replace_schema_metadata(
        {"mtal_ray.tasks": json.dumps(tasks), "mtal_ray.token_tasks": json.dumps(spans)}
    )
    return load_table(table, source="the annotated labels")


def annotated_cost(
    rows: pa.Table, tasks_per_id: Mapping[str, list[str]], tasks: list[str], cost_model: Any
) -> float:
    """The cost model's price of annotating ``tasks_per_id`` counted on the labels ``rows``
    hold (the annotator's, or the oracle's gold ones): the work done, whichever selector
    chose the sentences (random selection runs no model, so it has no predicted counts)."""
    from mtal_ray.selection import annotation_cost

    wanted = take_ids(rows, list(tasks_per_id))
    return annotation_cost(label_cost_table(wanted.to_pylist(), tasks), tasks_per_id, cost_model)


def label_kinds(tasks: Iterable[str]) -> dict[str, LabelKind]:
    """How the cost model prices each task's labels: per entity for a tagging task (it has
    predicted entity counts in the confidence table), once per sentence otherwise."""
    return {t: "token" if task_spec(t).kind == "tagging" else "sentence" for t in tasks}


def timed_sentences(run_dir: Path, iterations: Iterable[int]) -> list[TimedSentence]:
    """The sentences of ``iterations`` whose annotation a tool timed, with their label
    counts (sentences of files written before counts were stored are left out)."""
    out: list[TimedSentence] = []
    for iteration in iterations:
        path = round_dir(run_dir, iteration) / ANNOTATION_TIME
        if not path.is_file():
            continue
        for row in pq.read_table(path).to_pylist():
            counts = {t: row.get(f"labels.{t}") for t in row["tasks"]}
            if row.get("seconds") is None or any(c is None for c in counts.values()):
                continue
            labels = {t: int(c) for t, c in counts.items() if c is not None}
            out.append(TimedSentence(int(row["n_tokens"]), labels, float(row["seconds"])))
    return out


def annotation_seconds(run_dir: Path, iteration: int) -> dict[str, float] | None:
    """The round's measured annotation time: ``total`` and, per task, the time of the
    sentences annotated for it (a sentence asked for two tasks counts for both);
    ``None`` when the round's annotation was not timed."""
    path = round_dir(run_dir, iteration) / ANNOTATION_TIME
    if not path.is_file():
        return None
    out: dict[str, float] = {"total": 0.0}
    for row in pq.read_table(path, columns=["tasks", "seconds"]).to_pylist():
        seconds = float(row["seconds"] or 0.0)
        out["total"] += seconds
        for task in row["tasks"]:
            out[task] = out.get(task, 0.0) + seconds
    return out


def _exported_tokens(run_dir: Path, iteration: int, manifest: dict[str, Any]) -> dict[str, list]:
    """The words of each exported sentence (what returned sentences must still have)."""
    folder = round_dir(run_dir, iteration)
    if manifest.get("file") is None:
        exported_table = pq.read_table(folder / BATCH_TABLE, columns=["id", "tokens"])
    else:
        fmt = manifest["format"]
        exported = load_corpus(
            folder / manifest["file"], fmt, columns=manifest.get("columns")
        ).splits
        exported_table = next(iter(exported.values()))
        if fmt in _POSITIONAL:  # no ids in the files: rows follow the manifest's order
            exported_table = exported_table.set_column(
                0, "id", pa.array(manifest["ids"], pa.string())
            )
    return dict(
        zip(
            exported_table.column("id").to_pylist(),
            exported_table.column("tokens").to_pylist(),
            strict=True,
        )
    )


def _check_rows(
    table: pa.Table,
    where: Callable[..., tuple[Path, int]],
    manifest: dict[str, Any],
    exported_tokens: dict[str, list],
    seen: dict[str, tuple[Path, int]],
    known: dict[str, set[str]] | None,
    *,
    allow_new_labels: bool,
    accepted: dict[str, dict[str, int]],
    locate: Callable[[int], str] | None = None,
) -> None:
    """The checks every imported table passes: ``where(row[, task])`` -> (file, line)."""
    tasks_per_id: dict[str, list[str]] = manifest["tasks"]

    def error(i: int, problem: str, task: str | None = None) -> DataFormatError:
        if locate is not None:
            return DataFormatError(locate(i), None, problem)
        path, line = where(i, task) if task is not None else where(i)
        return DataFormatError(path, line, problem)

    for i, (sid, tokens) in enumerate(
        zip(table.column("id").to_pylist(), table.column("tokens").to_pylist(), strict=True)
    ):
        if sid not in exported_tokens:
            raise error(i, f"sentence {sid!r} is not in this batch")
        if sid in seen:
            raise error(i, f"sentence {sid!r} given twice (also {seen[sid][0]})")
        if tokens != exported_tokens[sid]:
            raise error(i, f"sentence {sid!r}: the words differ from the exported ones")
        seen[sid] = where(i)
    requested = {t for ts in tasks_per_id.values() for t in ts}
    for task in [t for t in TASK_COLUMNS if t in requested]:
        annotated = annotated_mask(table, task)
        for i, sid in enumerate(table.column("id").to_pylist()):
            if task in tasks_per_id.get(sid, []) and not annotated[i]:
                raise error(i, f"sentence {sid!r} is not annotated for task {task!r}", task)
    if known is not None:
        ordered = [t for t in TASK_COLUMNS if t in requested]
        for task, found in _new_labels(table, ordered, known).items():
            for label, (sid, row, count) in found.items():
                if not allow_new_labels:
                    raise error(
                        row,
                        f"sentence {sid!r}: {task} label {label!r} is not in the "
                        f"training label set ({len(known[task])} labels); pass "
                        "--allow-new-labels to accept it",
                        task,
                    )
                entry = accepted.setdefault(task, {})
                entry[label] = entry.get(label, 0) + count


def _store(
    run_dir: Path,
    iteration: int,
    tables: list[pa.Table],
    expected: list[str],
    seen: dict[str, tuple[Path, int]],
    accepted: dict[str, dict[str, int]],
    new_labels: dict[str, dict[str, int]] | None,
) -> pa.Table:
    """Store the validated tables as the round's ``imported.parquet`` (all or nothing)."""
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
    if new_labels is not None:
        new_labels.update(accepted)
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
