"""``mtal-ray data convert``: move a corpus into the layout a team prefers.

Every split of the source is read (with the same checks and options as training) and
written in the target format under ``DST`` (``DST/train.conll``, ``DST/train/seq.in``...).
Only tasks the target format can carry are converted: ``conllu`` dp+ner, ``slu`` sf+id,
``jsonl`` ner+re, ``conll`` one of ner/sf. Asking for another combination is one clear
error, and so is a target file that already exists; nothing is written unless every split
converts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pyarrow as pa

from mtal_ray.data.atomic import atomic_write_many
from mtal_ray.data.corpus import FORMAT_TASKS, FORMATS, format_split, load_corpus, split_path
from mtal_ray.data.schema import TASK_COLUMNS
from mtal_ray.errors import MtalError
from mtal_ray.taskspec import task_spec

#: Columns that only the format that wrote them can use.
_FORMAT_COLUMNS = {"conllu": "conllu.raw", "jsonl": "jsonl.extra", "conll": "conll.raw"}


def check_tasks(to: str, tasks: Sequence[str], available: Sequence[str]) -> list[str]:
    """``tasks`` if format ``to`` can carry them together; otherwise one clear error."""
    if to not in FORMATS:
        raise MtalError(f"unknown target format {to!r} (choose from {', '.join(FORMATS)})")
    for task in tasks:
        task_spec(task)
    missing = [t for t in tasks if t not in available]
    if missing:
        raise MtalError(
            f"task(s) {', '.join(missing)} not annotated in the source "
            f"(it has: {', '.join(available) or 'none'})"
        )
    carried = FORMAT_TASKS[to]
    refused = [t for t in tasks if t not in carried]
    if refused:
        raise MtalError(
            f"{to} cannot carry task(s) {', '.join(refused)} (it carries "
            f"{', '.join(carried)}); choose the tasks to convert with --tasks"
        )
    if to == "conll" and len(tasks) > 1:
        raise MtalError(f"conll carries one tagging task, ner or sf (asked for {', '.join(tasks)})")
    for task in tasks:
        for needed in task_spec(task).requires:
            if needed not in tasks:
                raise MtalError(f"task {task} needs {needed}: add it to --tasks")
    return list(tasks)


def _project(table: pa.Table, tasks: Sequence[str], keep_format_columns: bool) -> pa.Table:
    names = ["id", "tokens"]
    for task in tasks:
        names += [c for c in TASK_COLUMNS[task] if c in table.column_names]
    if keep_format_columns:
        names += [c for c in _FORMAT_COLUMNS.values() if c in table.column_names]
    return table.select(names)


def convert_corpus(
    src: str | Path,
    dst: str | Path,
    to: str,
    *,
    format: str | None = None,
    tasks: Sequence[str] | None = None,
    strict_bio: bool = False,
    overlapping_entities: str = "error",
    columns: Mapping[str, int] | None = None,
) -> dict[str, Path]:
    """Convert every split of ``src`` to format ``to`` under the folder ``dst``.

    Parameters
    ----------
    src
        A split file/folder or corpus folder (as for :func:`~mtal_ray.data.load_corpus`).
    dst
        The folder to write into (created).
    to
        ``conllu``, ``slu``, ``jsonl`` or ``conll``.
    format, strict_bio, overlapping_entities, columns
        How to read ``src`` (see :func:`~mtal_ray.data.load_corpus`).
    tasks
        Tasks to convert; default: every task annotated in ``src``.

    Returns
    -------
    dict
        Split name -> the file (folder for ``slu``) written.
    """
    if to not in FORMATS:
        raise MtalError(f"unknown target format {to!r} (choose from {', '.join(FORMATS)})")
    corpus = load_corpus(
        src,
        format,
        strict_bio=strict_bio,
        overlapping_entities=overlapping_entities,
        columns=columns,
    )
    chosen = check_tasks(to, list(tasks) if tasks else corpus.tasks, corpus.tasks)
    same = corpus.format == to
    dst = Path(dst)
    if dst.exists() and not dst.is_dir():
        raise MtalError(f"{dst}: exists and is not a folder")
    files: dict[Path, str] = {}
    written: dict[str, Path] = {}
    for name, table in corpus.splits.items():
        target = split_path(dst, name, to)
        texts = format_split(
            _project(table, chosen, same), target, to, corpus.columns if same else None
        )
        for path in texts:
            if path.exists():
                raise MtalError(f"{path}: exists; remove it or choose another destination")
        files.update(texts)
        written[name] = target
    atomic_write_many(files)
    return written
