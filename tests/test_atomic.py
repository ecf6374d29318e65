"""Atomic writes (``mtal_ray.data.atomic``): content, mode, failure leaves no trace, and it is
the only module of the package that makes temporary files."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from mtal_ray.data.atomic import (
    atomic_directory,
    atomic_path,
    atomic_write_bytes,
    atomic_write_many,
    atomic_write_text,
)

PACKAGE = Path(__file__).resolve().parents[1] / "mtal_ray"
ATOMIC = PACKAGE / "data" / "atomic.py"


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _only(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


class Boom(Exception):
    pass


def test_text_and_bytes_are_written(tmp_path: Path, umask_022: None) -> None:
    text_file = tmp_path / "sub" / "a.txt"
    atomic_write_text(text_file, "héllo\r\nworld\n")
    assert text_file.read_bytes() == "héllo\r\nworld\n".encode()  # newlines as given
    atomic_write_text(text_file, "again")
    assert text_file.read_text() == "again"
    atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert _mode(text_file) == _mode(tmp_path / "b.bin") == 0o644
    assert _only(tmp_path) == ["b.bin", "sub"]
    assert _only(tmp_path / "sub") == ["a.txt"]


def test_mode_follows_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        atomic_write_text(tmp_path / "private", "x")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "private") == 0o600


def test_many_writes_all_files(tmp_path: Path, umask_022: None) -> None:
    files = {tmp_path / "x.txt": "x", tmp_path / "d" / "y.bin": b"y"}
    atomic_write_many(files)
    assert (tmp_path / "x.txt").read_text() == "x"
    assert (tmp_path / "d" / "y.bin").read_bytes() == b"y"
    assert _mode(tmp_path / "x.txt") == 0o644


def test_many_replaces_nothing_when_one_file_fails(tmp_path: Path) -> None:
    first = tmp_path / "first.txt"
    first.write_text("old")
    blocked = tmp_path / "blocked"
    blocked.write_text("a file, so nothing can be written below it")
    with pytest.raises(OSError):
        atomic_write_many({first: "new", blocked / "second.txt": "new"})
    assert first.read_text() == "old"
    assert _only(tmp_path) == ["blocked", "first.txt"]


def test_atomic_path_renames_on_success(tmp_path: Path, umask_022: None) -> None:
    target = tmp_path / "out" / "plot.png"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        assert tmp.suffix == ".png"  # writers that pick a format from the name
        assert not tmp.exists()
        tmp.write_bytes(b"png")
        assert not target.exists()
    assert target.read_bytes() == b"png"
    assert _mode(target) == 0o644
    assert _only(target.parent) == ["plot.png"]


def test_atomic_path_failure_leaves_the_target(tmp_path: Path) -> None:
    target = tmp_path / "table.parquet"
    target.write_bytes(b"old")
    with pytest.raises(Boom), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise Boom
    assert target.read_bytes() == b"old"
    assert _only(tmp_path) == ["table.parquet"]
    # a writer that fails before creating its file
    with pytest.raises(Boom), atomic_path(target):
        raise Boom
    assert _only(tmp_path) == ["table.parquet"]


def test_temporary_names_are_unique_per_writer(tmp_path: Path) -> None:
    target = tmp_path / "same.txt"
    with atomic_path(target) as first, atomic_path(target) as second:
        assert first != second
        assert str(os.getpid()) in first.name
        first.write_text("1")
        second.write_text("2")
    assert target.read_text() == "1"  # the last writer to finish wins, whole
    assert _only(tmp_path) == ["same.txt"]


def test_directory_is_written_and_replaces_the_old_one(tmp_path: Path, umask_022: None) -> None:
    target = tmp_path / "best"
    with atomic_directory(target) as tmp:
        (tmp / "model.pt").write_bytes(b"v1")
        (tmp / "encoder").mkdir()
        (tmp / "encoder" / "config.json").write_text("{}")
        assert not target.exists()
    assert (target / "model.pt").read_bytes() == b"v1"
    assert (target / "encoder" / "config.json").read_text() == "{}"
    assert _mode(target) == 0o755
    with atomic_directory(target) as tmp:
        (tmp / "model.pt").write_bytes(b"v2")
    assert _only(target) == ["model.pt"]  # replaced, not merged
    assert (target / "model.pt").read_bytes() == b"v2"
    assert _only(tmp_path) == ["best"]


def test_directory_failure_leaves_the_old_one(tmp_path: Path) -> None:
    target = tmp_path / "best"
    target.mkdir()
    (target / "model.pt").write_bytes(b"old")
    with pytest.raises(Boom), atomic_directory(target) as tmp:
        (tmp / "model.pt").write_bytes(b"half")
        raise Boom
    assert (target / "model.pt").read_bytes() == b"old"
    assert _only(tmp_path) == ["best"]


def test_directory_replaces_a_file(tmp_path: Path) -> None:
    target = tmp_path / "export"
    target.write_text("stale file")
    with atomic_directory(target) as tmp:
        (tmp / "a").write_text("a")
    assert (target / "a").read_text() == "a"
    assert _only(tmp_path) == ["export"]


# Ways of making a temporary file or a temporary name for an atomic write.
_TEMP_PATTERNS = {
    "tempfile.mkstemp / mkdtemp / mktemp": re.compile(r"\bmk[sd]?temp\s*\("),
    "tempfile.NamedTemporaryFile": re.compile(r"\b(?:Named|Spooled)TemporaryFile\b"),
    "a '.tmp' name": re.compile(r"""["'][^"'\n]*\.tmp(?![a-zA-Z])"""),
}


def test_only_the_atomic_module_makes_temporary_files() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{number}: {what}: {line.strip()}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != ATOMIC
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        for what, pattern in _TEMP_PATTERNS.items()
        if pattern.search(line)
    ]
    assert not offenders, "use mtal_ray.data.atomic instead:\n" + "\n".join(offenders)


def test_the_source_scan_would_catch_the_old_writers() -> None:
    old = [
        'tmp = target.with_name(target.name + ".tmp")',
        'tmp = path.with_name(f".{path.name}.tmp.png")',
        'tmp = target.with_suffix(".parquet.tmp")',
        "fd, tmp = tempfile.mkstemp(dir=path.parent)",
        "tmp = tempfile.mkdtemp()",
        "with tempfile.NamedTemporaryFile(dir=d) as fh:",
    ]
    for line in old:
        assert any(p.search(line) for p in _TEMP_PATTERNS.values()), line
    harmless = ['"/tmp/ray; retry"', "with tempfile.TemporaryDirectory() as staging:"]
    for line in harmless:
        assert not any(p.search(line) for p in _TEMP_PATTERNS.values()), line


def test_temporaries_of_killed_writers_are_cleared_and_a_moved_aside_directory_restored(
    tmp_path: Path,
) -> None:
    import subprocess
    import sys

    from mtal_ray.data.atomic import remove_stale_temporaries

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    pid = int(dead.stdout)  # a process that has exited
    rounds = tmp_path / "rounds" / "round_1"
    rounds.mkdir(parents=True)
    (tmp_path / "state.json").write_text("{}")
    stale_file = tmp_path / f".state.json.{pid}-0123456789ab.tmp.json"
    stale_file.write_text("{half")
    stale_dir = rounds / f".checkpoint.{pid}-0123456789ab.tmpdir"
    (stale_dir / "sub").mkdir(parents=True)
    moved = rounds / f".model.{pid}-abcdef012345.old"  # killed between the two renames
    moved.mkdir()
    (moved / "weights.bin").write_text("w")
    kept_old = rounds / f".scores.{pid}-abcdef012345.old"  # its target was renamed in
    kept_old.mkdir()
    (rounds / "scores").mkdir()
    live = tmp_path / f".summary.json.{os.getpid()}-0123456789ab.tmp.json"  # a live writer
    live.write_text("...")
    ordinary = tmp_path / ".hidden.tmp"  # not a writer's name
    ordinary.write_text("x")

    assert remove_stale_temporaries(tmp_path) == [moved]  # the rest is too fresh
    (rounds / "model").rename(moved)
    done = remove_stale_temporaries(tmp_path, min_age_s=0)
    assert sorted(done) == sorted([stale_file, stale_dir, moved, kept_old])
    assert not stale_file.exists() and not stale_dir.exists() and not kept_old.exists()
    assert (rounds / "model" / "weights.bin").read_text() == "w"  # put back
    assert (rounds / "scores").is_dir() and (tmp_path / "state.json").exists()
    assert live.exists() and ordinary.exists()
    assert remove_stale_temporaries(tmp_path, min_age_s=0) == []
