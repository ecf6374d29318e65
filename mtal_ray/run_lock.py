"""One process per run directory: an OS-level lock on ``DIR/.lock``.

The launcher (``mtal-ray run``, ``python -m mtal_ray.launch``), ``mtal-ray import`` and
sweeps take the lock of their run (or sweep) directory before anything else, before Ray
starts. The lock is ``fcntl.flock`` on ``DIR/.lock``, a small JSON file naming the holder
(``{"pid": …, "host": …, "command": …, "since": …}``):

* a second launch on a locked directory fails at once with one line naming the holder's
  pid and host (:class:`RunLockedError`);
* the kernel drops a ``flock`` when its holder dies (``kill -9`` included), so a lock file
  whose lock can be taken is stale: it is taken over with one warning line;
* a clean release deletes the lock file (while still holding the lock), and removes the
  directory again when this lock created it and nothing else was written there, so a run
  refused before it wrote anything leaves nothing behind.

Taking a lock that this process already holds is a no-op (``mtal-ray import`` resumes the
run it locked). Creating the directory or the lock file doubles as the check that the
directory is usable: a path that is a file, or a folder this user cannot write, is one
clear :class:`~mtal_ray.errors.MtalError`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import json
import os
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mtal_ray.errors import MtalError

__all__ = [
    "LOCK_FILE",
    "RunLock",
    "RunLockedError",
    "clear_directory",
    "locked",
    "run_lock",
]

#: Name of the lock file inside the locked directory.
LOCK_FILE = ".lock"

_FILE_MODE = 0o644
#: Locks this process holds, by resolved directory: taking one again is a no-op.
_HELD: dict[Path, RunLock] = {}


class RunLockedError(MtalError):
    """Another process holds the lock of a run (or sweep) directory."""


class RunLock:
    """A held lock on ``directory`` (release with :meth:`release` or as a context manager)."""

    def __init__(self, directory: Path, fd: int, created: list[Path]) -> None:
        self.directory = directory
        self.path = directory / LOCK_FILE
        self._fd: int | None = fd
        self._created = created  # folders this lock made, innermost first

    @property
    def held(self) -> bool:
        """Whether the lock is still held."""
        return self._fd is not None

    def release(self) -> None:
        """Delete the lock file and drop the lock (idempotent).

        Folders the lock created are removed again when they are empty.
        """
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        _HELD.pop(self.directory, None)
        try:
            with contextlib.suppress(OSError):
                # unlink while holding the lock: a waiter that opened this file re-checks
                # the inode after it gets the lock and starts over on the new file
                if _same_file(fd, self.path):
                    self.path.unlink()
        finally:
            os.close(fd)
        for folder in self._created:
            try:
                folder.rmdir()
            except OSError:
                break

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def _holder(fd: int) -> dict[str, object]:
    """The holder described in the lock file open at ``fd`` (empty when unreadable)."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        raw = os.read(fd, 4096)
        data = json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _describe(holder: dict[str, object]) -> str:
    pid = holder.get("pid", "?")
    host = holder.get("host", "?")
    what = f"pid {pid} on host {host}"
    command = holder.get("command")
    since = holder.get("since")
    if command:
        what += f" ({command}"
        what += f", since {since})" if since else ")"
    return what


def _make_dirs(directory: Path, what: str) -> list[Path]:
    """Create ``directory`` and missing parents; the ones created, innermost first."""
    missing: list[Path] = []
    probe = directory
    while not os.path.lexists(probe):
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    if os.path.lexists(probe) and not probe.is_dir():
        kind = "the" if probe == directory else "its parent"
        raise MtalError(f"{what} {directory}: {kind} path {probe} is a file, not a folder")
    created: list[Path] = []
    for folder in reversed(missing):
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        except OSError as err:
            for done in created:
                with contextlib.suppress(OSError):
                    done.rmdir()
            raise MtalError(
                f"{what} {directory}: cannot create {folder} ({err.strerror})"
            ) from None
        created.insert(0, folder)
    return created


def run_lock(
    directory: str | os.PathLike[str],
    *,
    what: str = "run directory",
    command: str | None = None,
    warn: Callable[[str], None] | None = None,
) -> RunLock:
    """Take the lock of ``directory`` (created if needed) or fail at once.

    Parameters
    ----------
    directory
        The run or sweep directory.
    what
        How messages name the directory (``"run directory"``, ``"sweep directory"``).
    command
        What holds the lock, recorded for the message a second launch prints.
    warn
        Where the one-line warning about a stale lock goes (default: stderr).

    Raises
    ------
    RunLockedError
        Another live process holds the lock (the message names its pid and host).
    MtalError
        The directory cannot be created or written (a file, no permission...).
    """
    target = Path(directory).expanduser().resolve()
    held = _HELD.get(target)
    if held is not None and held.held:
        return held
    created = _make_dirs(target, what)
    path = target / LOCK_FILE
    try:
        for _ in range(20):  # the file can be replaced between open and flock; retry
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, _FILE_MODE)
            except OSError as err:
                if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                    raise MtalError(
                        f"{what} {target}: not writable ({err.strerror}); choose another "
                        "directory or fix its permissions"
                    ) from None
                raise MtalError(f"{what} {target}: cannot create {path} ({err})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                holder = _holder(fd)
                os.close(fd)
                if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise RunLockedError(
                        f"{what} {target} is in use by {_describe(holder)}; wait for it to "
                        "finish or stop it (one process per directory)"
                    ) from None
                raise MtalError(f"{what} {target}: cannot lock {path} ({err})") from None
            if not _same_file(fd, path):  # released and deleted meanwhile: start over
                os.close(fd)
                continue
            break
        else:  # pragma: no cover - only under a storm of concurrent launches
            raise MtalError(f"{what} {target}: could not take {path}; retry")
    except BaseException:
        for folder in created:
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    stale = _holder(fd)
    if stale:
        here = stale.get("host") == socket.gethostname()
        state = (
            "no longer running"
            if here and not _pid_alive(stale.get("pid"))
            else ("which no longer holds it")
        )
        message = (
            f"warning: taking over the stale lock of {what} {target} left by "
            f"{_describe(stale)}, {state}"
        )
        (warn or _stderr)(message)
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": command or Path(sys.argv[0]).name,
        "since": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, (json.dumps(record, sort_keys=True) + "\n").encode("utf-8"))
    with contextlib.suppress(OSError):
        os.fchmod(fd, _FILE_MODE)
    lock = RunLock(target, fd, created)
    _HELD[target] = lock
    return lock


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def clear_directory(directory: str | os.PathLike[str]) -> None:
    """Delete everything in ``directory`` except its lock file (``--restart``)."""
    import shutil

    folder = Path(directory)
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        if entry.name == LOCK_FILE:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


@contextlib.contextmanager
def locked(directory: str | os.PathLike[str], **kwargs: Any) -> Iterator[RunLock]:
    """:func:`run_lock` as a context manager: released on exit, unless this process
    already held it when the block began (then the outer holder releases it)."""
    already = Path(directory).expanduser().resolve() in _HELD
    lock = run_lock(directory, **kwargs)
    try:
        yield lock
    finally:
        if not already:
            lock.release()
