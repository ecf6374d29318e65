"""A growing catalogue of bad inputs: each is one line ``error: …``, exit 2, nothing written.

Each case is a command run in a subprocess (``python -m mtal_ray.cli …`` or ``python -m
mtal_ray.launch …``), a fragment its one-line message must hold, and the directory it must
leave byte for byte as it was (every file hashed before and after), or absent. No case
starts Ray: run directories with rounds are fabricated by the AL loop in this process with
the in-memory fakes of ``test_driver_loop`` (a few seconds for all of them), and runs that
get as far as a step go through ``--local``.

Add a case by appending a :class:`Case` to :data:`CASES` (and, when it needs one, a run
directory kind to :func:`_fabricate`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_driver_loop import Crash, Recorder, _loop

from mtal_ray.config import load_config
from mtal_ray.driver.annotators import FileAnnotator

REPO = Path(__file__).resolve().parents[1]

#: The experiment of every fabricated run (the fakes' BASE, as a YAML file).
CONFIG = """\
data:
  synthetic: {n_train: 60, n_dev: 10, n_test: 10}
  initial_count: 6
selection: {n: 4}
al: {iterations: 3}
tracking: {enabled: false}
"""
#: The same with a selection larger than the pool (54 sentences).
BIG_N = CONFIG.replace("selection: {n: 4}", "selection: {n: 500}")

#: Root loses CAP_DAC_OVERRIDE under this prefix, so a read-only folder is read-only.
UNPRIVILEGED = (
    ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    if os.geteuid() == 0 and shutil.which("setpriv")
    else []
)


def _digest(path: Path) -> dict[str, str] | None:
    """Relative path -> sha256 of every file and folder under ``path`` (None: absent)."""
    if not os.path.lexists(path):
        return None
    if path.is_file():
        return {".": hashlib.sha256(path.read_bytes()).hexdigest()}
    out: dict[str, str] = {}
    for item in sorted(path.rglob("*")):
        rel = str(item.relative_to(path))
        out[rel] = hashlib.sha256(item.read_bytes()).hexdigest() if item.is_file() else "dir"
    return out


# ------------------------------------------------------------------ fabricated runs
def _write_config(folder: Path, text: str = CONFIG, name: str = "cfg.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _fabricate(kind: str, root: Path) -> Path:
    """A run directory of ``kind`` made by the fake loop (no Ray, no model)."""
    run_dir = root / kind
    text = BIG_N if kind == "big_n" else CONFIG
    config = load_config(_write_config(root, text, f"{kind}.yaml"))
    if kind == "finished":
        _loop(run_dir, config).run()
    elif kind in ("at_select", "at_annotate"):
        crash = {"at_select": 2, "at_annotate": 3}[kind]
        with pytest.raises(Crash):
            loop = _loop(run_dir, config, callbacks=[Recorder(crash_before=crash)])
            loop.base_dir = REPO
            loop.run()
    elif kind == "human":
        human = config.model_copy(
            update={"annotation": config.annotation.model_copy(update={"mode": "human"})}
        )
        assert _loop(run_dir, human, annotator=FileAnnotator()).run().status == (
            "awaiting_annotation"
        )
    elif kind == "big_n":
        with pytest.raises(Exception, match=r"selection\.n=500"):
            loop = _loop(run_dir, config)
            loop.base_dir = REPO
            loop.run()
    else:  # pragma: no cover
        raise ValueError(kind)
    return run_dir


@dataclass
class Setup:
    """What a case runs: the argv after ``python``, the folder to check, where to run."""

    argv: list[str]
    check: Path
    cwd: Path = REPO
    unprivileged: bool = False


@dataclass
class Case:
    """One bad input: how to set it up, and the fragment of its one-line message."""

    name: str
    setup: Callable[[Path], Setup]  # tmp_path -> Setup
    fragment: str
    absent: bool = False  # the checked folder must not exist afterwards
    max_seconds: float | None = None


def _copy(kind: str, tmp: Path) -> Path:
    """A fresh run directory of ``kind`` in ``tmp`` (its config in ``tmp/cfg.yaml``).

    Made in place, not copied: state.json holds absolute paths of the round artifacts.
    """
    run_dir = _fabricate(kind, tmp)
    shutil.copy2(tmp / f"{kind}.yaml", tmp / "cfg.yaml")  # the config it was made with
    return run_dir


def _launch(tmp: Path, run_dir: Path, *extra: str, config: Path | None = None) -> list[str]:
    config = config or tmp / "cfg.yaml"
    if not config.exists():
        _write_config(tmp)
    return [
        "-m",
        "mtal_ray.launch",
        "--config",
        str(config),
        "--run-dir",
        str(run_dir),
        "--local",
        *extra,
    ]


def _cli(*args: str) -> list[str]:
    return ["-m", "mtal_ray.cli", *args]


def _state_edit(edit: Callable[[dict], object]) -> Callable[[Path], Setup]:
    def setup(tmp: Path) -> Setup:
        run_dir = _copy("at_select", tmp)
        path = run_dir / "state.json"
        state = json.loads(path.read_text())
        replaced = edit(state)
        path.write_text(json.dumps(state if replaced is None else replaced))
        return Setup(_launch(tmp, run_dir), run_dir)

    return setup


def _truncate(kind: str, name: str) -> Callable[[Path], Setup]:
    def setup(tmp: Path) -> Setup:
        run_dir = _copy(kind, tmp)
        path = run_dir / "rounds" / "round_0" / name
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
        return Setup(_launch(tmp, run_dir), run_dir)

    return setup


def _run_dir_is_a_file(tmp: Path) -> Setup:
    file = tmp / "run"
    file.write_text("not a folder\n")
    return Setup(_launch(tmp, file), file)


def _read_only_run_dir(tmp: Path) -> Setup:
    run_dir = _copy("at_select", tmp)
    for item in [run_dir, *run_dir.rglob("*")]:
        item.chmod(item.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return Setup(_launch(tmp, run_dir), run_dir, unprivileged=True)


def _selection_input(tmp: Path) -> Path:
    """A small valid confidence table."""
    table = tmp / "conf.parquet"
    ids = [f"s{i:02d}" for i in range(10)]
    pq.write_table(
        pa.table(
            {
                "id": ids,
                "n_tokens": [5 + i for i in range(10)],
                "sf.ec": [i / 10 for i in range(10)],
                "id.ec": [1 - i / 10 for i in range(10)],
            }
        ),
        table,
    )
    return table


def _select_output_folder(tmp: Path) -> Setup:
    table = _selection_input(tmp)
    out = tmp / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    argv = _cli("select", "--input", str(table), "--method", "mt-avg", "--n", "3")
    return Setup([*argv, "--output", str(out)], out)


def _select_output_read_only(tmp: Path) -> Setup:
    table = _selection_input(tmp)
    out = tmp / "ro"
    out.mkdir()
    out.chmod(0o555)
    argv = _cli("select", "--input", str(table), "--method", "mt-avg", "--n", "3")
    return Setup([*argv, "--output", str(out / "sel.json")], out, unprivileged=True)


def _inf_cost(tmp: Path) -> Setup:
    table = pq.read_table(_selection_input(tmp))
    costs = [1.0] * table.num_rows
    costs[3] = float("inf")
    bad = tmp / "bad.parquet"
    pq.write_table(table.append_column("sf.cost", pa.array(costs)), bad)
    argv = _cli("select", "--input", str(bad), "--method", "mt-avg", "--n", "3")
    return Setup([*argv, "--output", str(tmp / "out" / "sel.json")], tmp / "out")


def _import_a_file(tmp: Path) -> Setup:
    run_dir = _copy("human", tmp)
    batch = run_dir / "annotation" / "round_0" / "batch"
    return Setup(_cli("import", str(run_dir), str(batch / "seq.in"), "--no-resume"), run_dir)


def _empty_experiment(tmp: Path) -> Setup:
    run_dir = tmp / "new"
    return Setup(_launch(tmp, run_dir, 'tracking.experiment=""'), run_dir)


def _initial_count_refused(tmp: Path) -> Setup:
    run_dir = tmp / "new" / "run"
    return Setup(_launch(tmp, run_dir, "data.initial_count=5000"), tmp / "new")


def _score_missing_checkpoint(tmp: Path) -> Setup:
    out = tmp / "out"
    argv = _cli(
        "score",
        "--checkpoint",
        str(tmp / "nope"),
        "--data",
        str(tmp),
        "--output",
        str(out / "c.parquet"),
    )
    return Setup(argv, out)


def _score_bad_checkpoint(tmp: Path) -> Setup:
    ckpt = tmp / "ckpt"
    ckpt.mkdir()
    (ckpt / "model.pt").write_bytes(b"not a model")
    out = tmp / "out"
    argv = _cli(
        "score", "--checkpoint", str(ckpt), "--data", str(tmp), "--output", str(out / "c.parquet")
    )
    return Setup(argv, out)


def _state_deleted(tmp: Path) -> Setup:
    run_dir = _copy("at_select", tmp)
    (run_dir / "state.json").unlink()
    return Setup(_launch(tmp, run_dir), run_dir)


def _big_n(tmp: Path) -> Setup:
    run_dir = _copy("big_n", tmp)
    return Setup(_launch(tmp, run_dir), run_dir)


def _relative_data_path(command: str) -> Callable[[Path], Setup]:
    """``data.path`` relative: both commands resolve it against the working directory."""

    def setup(tmp: Path) -> Setup:
        configs, work = tmp / "configs", tmp / "work"
        (configs / "corpus").mkdir(parents=True)  # beside the config: must NOT be used
        work.mkdir()
        config = configs / "exp.yaml"
        config.write_text(
            CONFIG.replace("data:\n", "data:\n  path: corpus\n  format: slu\n"), encoding="utf-8"
        )
        if command == "train":
            argv = _cli("train", "--config", str(config), "--output", str(work / "out"))
        else:
            argv = _launch(tmp, work / "run", config=config)
        return Setup(argv, work, cwd=work)

    return setup


def _train_other_config(tmp: Path) -> Setup:
    work = tmp / "work"
    held = work / "runs" / "train"
    held.mkdir(parents=True)
    (held / "train_config.json").write_text(json.dumps({"digest": "0" * 16, "config": {}}))
    (held / "train").mkdir()
    config = _write_config(tmp)
    return Setup(_cli("train", "--config", str(config)), work, cwd=work)


def _sweep_bad_corpus(tmp: Path) -> Setup:
    corpus = tmp / "corpus"
    for split in ("train", "dev", "test"):
        folder = corpus / split
        folder.mkdir(parents=True)
        (folder / "seq.in").write_text("show flights\nto boston\n")
        (folder / "seq.out").write_text("O O\nO\n")  # line 2: 2 words, 1 tag
        (folder / "label").write_text("flight\nflight\n")
    text = (REPO / "configs" / "sweep_quickstart.yaml").read_text()
    text = text.replace("  path: synthetic\n", f"  path: {corpus}\n  format: slu\n")
    config = _write_config(tmp, text, "sweep.yaml")
    sweep_dir = tmp / "sweep"
    argv = _cli("sweep", "--config", str(config), "--sweep-dir", str(sweep_dir))
    return Setup([*argv, "tracking.enabled=false"], sweep_dir)


CASES = [
    Case("run-dir is a file", _run_dir_is_a_file, "is a file, not a folder"),
    Case("read-only run directory", _read_only_run_dir, "not writable"),
    Case("select --output is a folder", _select_output_folder, "is a folder"),
    Case("select --output read-only", _select_output_read_only, "not writable"),
    Case("inf in a cost column", _inf_cost, "'sf.cost' has infinite values", absent=True),
    Case("import a file, not the batch folder", _import_a_file, "slu format is a folder"),
    Case("empty tracking.experiment", _empty_experiment, "tracking.experiment", absent=True),
    Case(
        "initial_count bigger than train",
        _initial_count_refused,
        "initial labeled set of 5000 sentences is impossible",
        absent=True,
    ),
    Case(
        "score: missing checkpoint",
        _score_missing_checkpoint,
        "no such checkpoint",
        absent=True,
        max_seconds=20,
    ),
    Case(
        "score: not a checkpoint",
        _score_bad_checkpoint,
        "not a checkpoint (no meta.json)",
        absent=True,
        max_seconds=20,
    ),
    Case("state.json deleted next to rounds", _state_deleted, "--restart"),
    Case("state.json a list", _state_edit(lambda s: []), "not a run state (a JSON list"),
    Case(
        "state.json labeled of the wrong shape",
        _state_edit(lambda s: s.update(labeled=5)),
        "'labeled' must be a mapping",
    ),
    Case(
        "state.json rounds of the wrong shape",
        _state_edit(lambda s: s.update(rounds=["x"])),
        "'rounds' must be a list of round records",
    ),
    Case("unknown step", _state_edit(lambda s: s.update(step="dance")), "unknown step 'dance'"),
    Case(
        "truncated confidence table",
        _truncate("at_select", "confidence.parquet"),
        "cannot read the round's confidence table",
    ),
    Case(
        "truncated selection",
        _truncate("at_annotate", "selection.json"),
        "cannot read the round's selection",
    ),
    Case(
        "selection.n larger than the pool",
        _big_n,
        "selection.n=500 is larger than the pool (54 unlabeled sentences",
    ),
    Case("train: relative data.path", _relative_data_path("train"), "work/corpus"),
    Case("run: relative data.path", _relative_data_path("run"), "work/corpus"),
    Case(
        "train: runs/train of another config",
        _train_other_config,
        "runs/train (the default --output) holds a training of another config",
    ),
    Case(
        "sweep over a corpus the reader refuses",
        _sweep_bad_corpus,
        "train/seq.out:2",
        absent=True,
        max_seconds=30,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_one_line_and_changes_nothing(case: Case, tmp_path: Path):
    setup = case.setup(tmp_path)
    if setup.unprivileged and os.geteuid() == 0 and not UNPRIVILEGED:
        pytest.skip("running as root without setpriv: permissions are not enforced")
    before = _digest(setup.check)
    prefix = UNPRIVILEGED if setup.unprivileged else []
    started = time.monotonic()
    done = subprocess.run(
        [*prefix, sys.executable, *setup.argv],
        cwd=setup.cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    seconds = time.monotonic() - started
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert case.fragment in lines[0]
    if case.absent:
        assert _digest(setup.check) is None, f"{setup.check} was left behind"
    else:
        assert _digest(setup.check) == before, f"{setup.check} changed"
    if case.max_seconds is not None:
        assert seconds < case.max_seconds


def test_files_the_loop_writes_are_readable_by_others(tmp_path):
    """Annotators on shared storage read the batch as another user: 0644, not 0600."""
    old = os.umask(0o022)
    try:
        run_dir = _fabricate("human", tmp_path)
    finally:
        os.umask(old)
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert any(p.name == "seq.in" for p in files) and any(p.name == "state.json" for p in files)
    modes = {str(p.relative_to(run_dir)): oct(p.stat().st_mode & 0o777) for p in files}
    written_by_fakes = {"rounds/round_0/train/model.txt", "rounds/round_0/confidence.parquet"}
    assert {k: v for k, v in modes.items() if v != "0o644" and k not in written_by_fakes} == {}
