"""Load a corpus (one split file/folder, or a folder of splits) in any supported format."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from mtal_ray.data.conllu import read_conllu, write_conllu
from mtal_ray.data.jsonl import read_jsonl, write_jsonl
from mtal_ray.data.schema import tasks_in
from mtal_ray.data.slu import is_slu_folder, read_slu, write_slu
from mtal_ray.errors import DataFormatError, MtalError
from mtal_ray.taskspec import tasks_of_format

FORMATS = ("conllu", "slu", "jsonl")
#: Tasks each format can carry (from the task table).
FORMAT_TASKS = {fmt: tasks_of_format(fmt) for fmt in FORMATS}
_EXTENSIONS = {".conllu": "conllu", ".conll": "conllu", ".json": "jsonl", ".jsonl": "jsonl"}
_SPLIT_ORDER = ("train", "dev", "valid", "validation", "test")


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
    """

    path: Path
    format: str
    splits: dict[str, pa.Table] = field(default_factory=dict)

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


def _sniff_file(path: Path) -> str:
    if path.suffix in _EXTENSIONS:
        return _EXTENSIONS[path.suffix]
    try:
        with path.open(encoding="utf-8") as handle:
            head = handle.read(4096)
    except (OSError, UnicodeDecodeError) as err:
        raise DataFormatError(path, None, f"cannot read file: {err}") from err
    stripped = head.lstrip()
    if stripped.startswith("{"):
        return "jsonl"
    if "\t" in head:
        return "conllu"
    raise DataFormatError(path, None, "cannot tell the format; pass --format conllu|slu|jsonl")


def detect_format(path: str | Path) -> str:
    """Guess the format of a split file, split folder or corpus folder."""
    path = Path(path)
    if not path.exists():
        raise MtalError(f"{path}: no such file or folder")
    if path.is_file():
        return _sniff_file(path)
    if is_slu_folder(path) or any(is_slu_folder(p) for p in path.iterdir()):
        return "slu"
    for child in sorted(path.iterdir()):
        if child.is_file() and child.suffix in _EXTENSIONS:
            return _EXTENSIONS[child.suffix]
    raise MtalError(
        f"{path}: found no corpus files (.conllu, .json/.jsonl, or seq.in/seq.out/label folders)"
    )


_READERS: dict[str, Callable[..., pa.Table]] = {
    "conllu": read_conllu,
    "slu": read_slu,
    "jsonl": read_jsonl,
}


def load_corpus(path: str | Path, format: str | None = None, *, strict_bio: bool = False) -> Corpus:
    """Read every split under ``path``.

    Parameters
    ----------
    path
        A split file (``train.conllu``), a split folder (``atis/train``) or a corpus folder
        holding split files or split folders.
    format
        ``conllu``, ``slu`` or ``jsonl``; detected from the files when ``None``.
    strict_bio
        Refuse BIO sequences with an ``I-`` that does not continue an entity.
    """
    path = Path(path)
    fmt = format or detect_format(path)
    if fmt not in FORMATS:
        raise MtalError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    if not path.exists():
        raise MtalError(f"{path}: no such file or folder")
    if fmt == "slu":
        folders = [path] if is_slu_folder(path) else [p for p in path.iterdir() if is_slu_folder(p)]
        items = {p.name: p for p in folders}
    elif path.is_file():
        items = {path.stem: path}
    else:
        items = {
            p.stem: p for p in path.iterdir() if p.is_file() and _EXTENSIONS.get(p.suffix) == fmt
        }
    if not items:
        raise MtalError(f"{path}: no {fmt} split files found")
    corpus = Corpus(path=path, format=fmt)
    for name in sorted(items, key=_split_key):
        reader = _READERS[fmt]
        corpus.splits[name] = (
            read_jsonl(items[name])
            if fmt == "jsonl"
            else reader(items[name], strict_bio=strict_bio)
        )
    return corpus


def write_split(table: pa.Table, path: str | Path, format: str) -> None:
    """Write one split in ``format`` (a file for conllu/jsonl, a folder for slu), atomically."""
    writers = {"conllu": write_conllu, "slu": write_slu, "jsonl": write_jsonl}
    if format not in writers:
        raise MtalError(f"unknown format {format!r} (choose from {', '.join(FORMATS)})")
    writers[format](table, path)


def split_path(root: str | Path, split: str, format: str) -> Path:
    """Where :func:`write_split` puts ``split`` of a ``format`` corpus under ``root``."""
    suffix = {"conllu": ".conllu", "jsonl": ".json", "slu": ""}[format]
    return Path(root) / f"{split}{suffix}"
