"""Atomic writes: a reader never sees a half-written file or directory.

Everything is first written to a temporary sibling of its target (same folder, so the
final rename never crosses a file system), flushed to disk, and only then renamed over the
target. A failed write leaves the target as it was and removes its temporary sibling.
Temporary names hold the writer's pid and a random token, so two writers of the same
target never share one. This is the only module of mtal_ray that makes temporary files:

* :func:`atomic_write_text` / :func:`atomic_write_bytes` — one file from memory;
* :func:`atomic_write_many` — several files, renamed only once all of them are written;
* :func:`atomic_path` — a temporary path for writers that want one (``pq.write_table``,
  ``fig.savefig``, ``torch.save``);
* :func:`atomic_directory` — a whole directory (e.g. a checkpoint);
* :func:`remove_stale_temporaries` — what a writer killed mid-write left behind.

Files get the ordinary mode (``0o666`` less the umask: ``0644`` under umask ``022``).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path

__all__ = [
    "atomic_directory",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_many",
    "atomic_write_text",
    "remove_stale_temporaries",
]

_FILE_MODE = 0o666  # the process umask is applied by the OS, as for open()
_DIR_MODE = 0o777


def _temp_sibling(path: Path, kind: str = "tmp") -> Path:
    """A fresh hidden name beside ``path``: ``.<name>.<pid>-<random>.<kind><suffix>``.

    The target's suffix is kept at the end so writers that pick the format from the
    extension (``fig.savefig``) write the right one.
    """
    token = f"{os.getpid()}-{secrets.token_hex(6)}"
    return path.with_name(f".{path.name}.{token}.{kind}{path.suffix}")


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (best effort: not every OS allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _write_temp(path: Path, data: bytes) -> Path:
    """``data`` in a new, fsynced temporary sibling of ``path`` (returned)."""
    tmp = _temp_sibling(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        _remove(tmp)
        raise
    return tmp


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` atomically."""
    atomic_write_many({Path(path): text})


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    atomic_write_many({Path(path): data})


def atomic_write_many(files: Mapping[Path, str | bytes]) -> None:
    """Write several files so that none is replaced unless all of them could be written.

    Each file is first written (and fsynced) to a temporary sibling; only when every
    temporary file is complete are they renamed over their targets. Text is UTF-8.
    """
    temps: list[tuple[Path, Path]] = []
    try:
        for path, content in files.items():
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
            temps.append((_write_temp(path, data), path))
        for tmp, path in temps:
            os.replace(tmp, path)
        for parent in {path.parent for _, path in temps}:
            _fsync_dir(parent)
        temps.clear()
    finally:
        for tmp, _ in temps:
            _remove(tmp)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary sibling path to write ``path`` through; rename it on success.

    The caller writes the file at the yielded path (it does not exist yet; its name ends
    with the target's suffix). When the block exits normally the file is fsynced and
    renamed over ``path``; when it raises, the temporary file is removed and ``path`` is
    left untouched::

        with atomic_path(out / "scores.parquet") as tmp:
            pq.write_table(table, tmp)
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_sibling(target)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, target)
    except BaseException:
        _remove(tmp)
        raise
    _fsync_dir(target.parent)


def _fsync_tree(root: Path) -> None:
    for folder, _, names in os.walk(root):
        for name in names:
            file = Path(folder) / name
            if file.is_file() and not file.is_symlink():
                _fsync_file(file)
        _fsync_dir(Path(folder))


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a new empty temporary sibling directory; it replaces ``path`` on success.

    When the block exits normally the directory's files are fsynced and it takes the
    place of ``path`` (whatever was at ``path`` is moved aside first and then deleted, so
    readers see either the old or the new directory, except for the instant between the
    two renames). When the block raises, the temporary directory is deleted and ``path``
    is left untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_sibling(target, "tmpdir")
    tmp.mkdir(_DIR_MODE)
    try:
        yield tmp
        _fsync_tree(tmp)
    except BaseException:
        _remove(tmp)
        raise
    old: Path | None = None
    try:
        if os.path.lexists(target):  # a directory cannot be renamed over a non-empty one
            old = _temp_sibling(target, "old")
            os.replace(target, old)
        os.replace(tmp, target)
    except BaseException:
        if old is not None and not os.path.lexists(target):
            os.replace(old, target)
            old = None
        _remove(tmp)
        raise
    finally:
        if old is not None:
            _remove(old)
    _fsync_dir(target.parent)


_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-[0-9a-f]{12}\.(?P<kind>tmp|tmpdir|old)")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temporaries(root: str | os.PathLike[str], min_age_s: float = 60.0) -> list[Path]:
    """Clear what writers killed mid-write (``kill -9``, a lost machine) left under ``root``:
    temporary siblings of dead processes are deleted; a directory moved aside while being
    replaced (``.old``) is put back when its target is missing (killed between the two
    renames), else deleted. Temporaries of live processes are left alone, and so are those
    modified in the last ``min_age_s`` (a writer on another node of a shared file system
    has a pid this machine does not know). Returns the paths removed or restored."""
    import time

    now = time.time()
    done: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        for entry in [*dirnames, *filenames]:
            match = _TEMP_NAME.match(entry)
            if match is None or _alive(int(match["pid"])):
                continue
            path = Path(dirpath) / entry
            target = path.with_name(match["name"])
            if match["kind"] == "old" and not os.path.lexists(target):
                os.replace(path, target)
            elif now - path.lstat().st_mtime >= min_age_s:
                _remove(path)
            else:
                continue
            done.append(path)
        dirnames[:] = [d for d in dirnames if (Path(dirpath) / d).is_dir()]
    return done
