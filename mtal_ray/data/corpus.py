"""Load a corpus (one split file/folder, or a folder of splits) in any supported format."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from mtal_ray.data.atomic import atomic_write_many
from mtal_ray.data.conll import CONLL_TASKS, DOCSTART, format_conll, read_conll, resolve_columns
from mtal_ray.data.conllu import format_conllu, is_word_line_id, read_conllu
from mtal_ray.data.jsonl import format_jsonl, read_jsonl
from mtal_ray.data.schema import tasks_in
from mtal_ray.data.slu import format_slu, is_slu_folder, read_slu
from mtal_ray.data.spans import OVERLAP_POLICIES
from mtal_ray.data.text import ReadReport
from mtal_ray.errors import DataFormatError, MtalError
from mtal_ray.taskspec import tasks_of_format

FORMATS = ("conllu", "slu", "jsonl", "conll")
#: Tasks each format can carry (from the task table; a CoNLL file carries ner or sf).
FORMAT_TASKS = {fmt: tasks_of_format(fmt) or CONLL_TASKS for fmt in FORMATS}
_EXTENSIONS = {".conllu": "conllu", ".json": "jsonl", ".jsonl": "jsonl"}
#: Suffixes whose format is told by content (``.conll`` names CoNLL-U/CoNLL-X and CoNLL-2003
#: files alike); ``.txt`` only for split-named files (``train.txt``).
_SNIFFED = (".conll", ".tsv", ".bio", ".iob", ".txt")
_SPLIT_ORDER = ("train", "dev", "valid", "validation", "test")
_SUFFIX = {"conllu": ".conllu", "jsonl": ".json", "slu": "", "conll": ".conll"}


@dataclass
class Corpus:
    """The splits of one corpus as example tables.

    Attributes
    ----------
    path
        Where the corpus was read from.
    format
        One of :data:`FORMATS`.
    splits
        Split name (file stem or folder name: ``train``, ``dev``, ``test``...) -> table.
    report
        Split name -> what its reader normalised and dropped:
        ``{"normalised": {kind: count}, "dropped_entities": n, "dropped_relations": n}``
        (see :class:`~mtal_ray.data.text.ReadReport`).
    overlapping_entities
        The policy the corpus was read with.
    columns
        For ``conll``: the ``data.columns`` mapping the corpus was read with.
    """

    path: Path
    format: str
    splits: dict[str, pa.Table] = field(default_factory=dict)
    report: dict[str, dict[str, Any]] = field(default_factory=dict)
    overlapping_entities: str = "error"
    columns: dict[str, int] | None = None

    def report_line(self) -> str | None:
        """One line saying what reading normalised or dropped (``None`` when nothing):
        for the run log's warning."""
        parts = []
        for name, entry in self.report.items():
            bits = []
            if entry.get("normalised"):
                listed = ", ".join(f"{k} {v}" for k, v in entry["normalised"].items())
                bits.append(f"normalised {listed}")
            if entry.get("dropped_entities") or entry.get("dropped_relations"):
                bits.append(
                    f"dropped {entry['dropped_entities']} overlapping entities and "
                    f"{entry['dropped_relations']} relations that used them "
                    f"({self.overlapping_entities})"
                )
            if bits:
                parts.append(f"{name}: {'; '.join(bits)}")
        if not parts:
            return None
        return f"{self.path} ({self.format}) was read leniently: " + " | ".join(parts)

    def report_params(self) -> dict[str, int]:
        """Flat counts for tracking (MLflow params): ``data.dropped_entities.<split>``,
        ``data.dropped_relations.<split>`` when a keep policy is set, and
        ``data.normalised.<split>`` (lines/files) where something was normalised."""
        params: dict[str, int] = {}
        for name, entry in self.report.items():
            if self.overlapping_entities != "error":
                params[f"data.dropped_entities.{name}"] = int(entry.get("dropped_entities", 0))
                params[f"data.dropped_relations.{name}"] = int(entry.get("dropped_relations", 0))
            normalised = sum(entry.get("normalised", {}).values())
            if normalised:
                params[f"data.normalised.{name}"] = int(normalised)
        return params

    @property
    def tasks(self) -> list[str]:
        """Tasks annotated in at least one split, in the format's task order."""
        present = {t for table in self.splits.values() for t in tasks_in(table)}
        return [t for t in FORMAT_TASKS[self.format] if t in present]

    def split(self, name: str) -> pa.Table:
        """The split called ``name``; a clear error lists the available ones."""
        if name not in self.splits:
            raise MtalError(
                f"{self.path}: no split {name!r} (available: {', '.join(self.splits) or 'none'})"
            )
        return self.splits[name]


def _split_key(name: str) -> tuple[int, str]:
    return (_SPLIT_ORDER.index(name) if name in _SPLIT_ORDER else len(_SPLIT_ORDER), name)


def sniff_text(head: str) -> str | None:
    """The format of a file from its first characters: ``jsonl`` (a JSON object),
    ``conllu`` (10 tab-separated columns with a CoNLL-U ID), ``conll`` (whitespace-separated
    columns or ``-DOCSTART-``), or ``None``."""
    head = head.removeprefix("\ufeff")
    if head.lstrip().startswith("{"):
        return "jsonl"
    for line in head.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) == 10 and is_word_line_id(cols[0]):
            return "conllu"
        fields = line.split()
        if fields[0] == DOCSTART or len(fields) >= 2:
            return "conll"
        return None
    return None


def _sniff_file(path: Path) -> str:
    if path.suffix.lower() in _EXTENSIONS:
        return _EXTENSIONS[path.suffix.lower()]
    try:
        with path.open("rb") as handle:
            head = handle.read(65536).decode("utf-8", errors="ignore")
    except OSError as err:
        raise DataFormatError(path, None, f"cannot read file: {err.strerror or err}") from None
    fmt = sniff_text(head)
    if fmt is None:
        raise DataFormatError(
            path, None, f"cannot tell the format; pass --format {'|'.join(FORMATS)}"
        )
    return fmt


def _is_candidate(path: Path) -> bool:
    """Whether a file in a corpus folder may be a split file."""
    if not path.is_file() or path.name.startswith("."):
        return False
    suffix = path.suffix.lower()  # train.CONLLU as well
    if suffix in _EXTENSIONS:
        return True
    return suffix in _SNIFFED and (suffix != ".txt" or path.stem in _SPLIT_ORDER)


def _not_format(path: Path, fmt: str) -> str:
    """Why the split file ``path`` is not read as ``fmt``."""
    try:
        if path.stat().st_size == 0:
            return "an empty file"
        found = _sniff_file(path)
    except DataFormatError as err:
        return err.problem
    except OSError as err:
        return f"cannot read file: {err.strerror or err}"
    return f"looks like {found}, but the corpus is read as {fmt} (its split files differ)"


def _file_format(path: Path) -> str | None:
    try:
        return _sniff_file(path)
    except DataFormatError:
        return None


def detect_format(path: str | Path) -> str:
    """Guess the format of a split file, split folder or corpus folder (by suffix, and by
    content for ``.conll``, ``.tsv``, ``.bio``, ``.iob``, ``train.txt``... and other files)."""
    path = Path(path)
    if not path.exists():
        raise MtalError(f"{path}: no such file or folder")
    if path.is_file():
        return _sniff_file(path)
    if is_slu_folder(path) or any(is_slu_folder(p) for p in path.iterdir()):
        return "slu"
    for child in sorted(path.iterdir()):
        if _is_candidate(child) and (fmt := _file_format(child)) is not None:
            return fmt
    raise MtalError(
        f"{path}: found no corpus files (.conllu, .json/.jsonl, .conll/.tsv/.bio/.iob, "
        "train.txt..., or seq.in/seq.out/label folders)"
    )


def load_corpus(
    path: str | Path,
    format: str | None = None,
    *,
    strict_bio: bool = False,
    overlapping_entities: str = "error",
    columns: Mapping[str, int] | None = None,
) -> Corpus:
    """Read every split under ``path``.

    Parameters
    ----------
    path
        A split file (``train.conllu``), a split folder (``atis/train``) or a corpus folder
        holding split files or split folders.
    format
        ``conllu``, ``slu``, ``jsonl`` or ``conll``; detected from the files when ``None``.
    strict_bio
        Refuse BIO sequences with an ``I-`` that does not continue an entity.
    overlapping_entities
        ``error`` (default), ``keep-longest`` or ``keep-shortest``: what to do with
        overlapping / nested entity mentions (``jsonl``).
    columns
        ``conll`` only: ``{"token": i, "ner" | "sf": j}`` (default token 0, ner last).

    Returns
    -------
    Corpus
        With :attr:`Corpus.report` saying per split what was normalised or dropped.
    """
    path = Path(path)
    if overlapping_entities not in OVERLAP_POLICIES:
        raise MtalError(
            f"data.overlapping_entities: unknown policy {overlapping_entities!r} "
            f"(choose from {', '.join(OVERLAP_POLICIES)})"
        )
    if format is not None and format not in FORMATS:
        raise MtalError(f"unknown format {format!r} (choose from {', '.join(FORMATS)})")
    fmt = format or detect_format(path)
    if not path.exists():
        raise MtalError(f"{path}: no such file or folder")
    if columns is not None:
        if fmt != "conll":
            raise MtalError(f"data.columns: only the conll format has columns ({path} is {fmt})")
        resolve_columns(columns)
    if fmt == "slu":
        if not path.is_dir():
            raise MtalError(
                f"{path}: a file, but the slu format is a folder holding seq.in, seq.out and "
                "label (give that folder, not one of its files)"
            )
        folders = [path] if is_slu_folder(path) else [p for p in path.iterdir() if is_slu_folder(p)]
        items = {p.name: p for p in folders}
    elif path.is_file():
        items = {path.stem: path}
    else:
        items = {}
        for p in sorted(path.iterdir()):
            if not _is_candidate(p):
                continue
            found = _file_format(p)
            if p.stem in _SPLIT_ORDER and found != fmt:
                # a split file that is not read must not vanish silently ("no split 'dev'")
                raise MtalError(f"{p}: {_not_format(p, fmt)}; fix or remove it")
            if found == fmt:
                if p.stem in items:
                    raise MtalError(
                        f"{path}: two files for split {p.stem!r}: {items[p.stem].name}, {p.name}"
                    )
                items[p.stem] = p
    if not items:
        raise MtalError(f"{path}: no {fmt} split files found")
    corpus = Corpus(
        path=path,
        format=fmt,
        overlapping_entities=overlapping_entities,
        columns=dict(columns) if columns is not None else None,
    )
    for name in sorted(items, key=_split_key):
        report = ReadReport()
        item = items[name]
        if fmt == "jsonl":
            table = read_jsonl(item, overlapping_entities=overlapping_entities, report=report)
        elif fmt == "conll":
            table = read_conll(item, columns=columns, strict_bio=strict_bio, report=report)
        elif fmt == "slu":
            table = read_slu(item, strict_bio=strict_bio, report=report)
        else:
            table = read_conllu(item, strict_bio=strict_bio, report=report)
        corpus.splits[name] = table
        corpus.report[name] = report.to_dict()
    return corpus


def format_split(
    table: pa.Table, path: str | Path, format: str, columns: Mapping[str, int] | None = None
) -> dict[Path, str]:
    """The file(s) :func:`write_split` would write (path -> text), without writing them."""
    path = Path(path)
    if format == "conllu":
        return {path: format_conllu(table)}
    if format == "jsonl":
        return {path: format_jsonl(table)}
    if format == "conll":
        return {path: format_conll(table, columns)}
    if format == "slu":
        return {path / name: text for name, text in format_slu(table).items()}
    raise MtalError(f"unknown format {format!r} (choose from {', '.join(FORMATS)})")


def write_split(
    table: pa.Table, path: str | Path, format: str, columns: Mapping[str, int] | None = None
) -> None:
    """Write one split in ``format`` (a file for conllu/jsonl/conll, a folder for slu),
    atomically (all of a folder's files or none)."""
    atomic_write_many(format_split(table, path, format, columns))


def split_path(root: str | Path, split: str, format: str) -> Path:
    """Where :func:`write_split` puts ``split`` of a ``format`` corpus under ``root``."""
    if format not in _SUFFIX:
        raise MtalError(f"unknown format {format!r} (choose from {', '.join(FORMATS)})")
    return Path(root) / f"{split}{_SUFFIX[format]}"
