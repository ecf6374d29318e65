"""``mtal-ray train``: train once on the configured labeled data and report scores.

::

    mtal-ray train --config configs/quickstart.yaml --output runs/train-once \
        training.max_steps=200 model.sharing=cmt [--json]

Uses the ``data`` section for the corpus, tasks and splits (the whole training split,
``data.limit_train`` rows if set; no active-learning subset), and the ``model`` and
``training`` sections for the model. Keeps the best checkpoint in ``OUTPUT/best`` and
prints dev/test scores per task as a table, or as one JSON object on the last line with
``--json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mtal_ray.errors import ConfigError


def _load_data(cfg: Any, base: Path) -> tuple[list[str], Any, Any, Any]:
    """Tasks, train, dev and test rows: the corpus read as ``mtal-ray run`` reads it
    (``data.overlapping_entities``, ``data.columns``, limits and checks included)."""
    from mtal_ray.driver.loop import load_run_data

    run = load_run_data(cfg, base)
    if run.dev_source is None:
        raise ConfigError(
            "data.dev_split: `mtal-ray train` evaluates on a dev split of the corpus; name one "
            "(null, drawing dev sentences from train, is for `mtal-ray run`)"
        )
    lenient = run.corpus.report_line()
    if lenient:
        print(lenient, file=sys.stderr)
    return run.tasks, run.train, run.dev_source, run.test


def _print_table(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"best checkpoint (step {summary['best_step']}/{summary['steps']})")
    table.add_column("task")
    table.add_column("dev", justify="right")
    table.add_column("test", justify="right")
    test = summary["test"] or {}
    for task, value in summary["dev"].items():
        table.add_row(task, f"{value:.4f}", f"{test[task]:.4f}" if task in test else "-")
    test_gmean = summary["test_gmean"]
    table.add_row(
        "geo. mean",
        f"{summary['dev_gmean']:.4f}",
        f"{test_gmean:.4f}" if test_gmean is not None else "-",
    )
    console = Console()
    console.print(table)
    console.print(f"checkpoint: {summary['checkpoint_dir']}  ({summary['wall_time_s']:.0f} s)")


def run_train(args: argparse.Namespace) -> int:
    """Entry point of ``mtal-ray train``."""
    from mtal_ray.config import load_config
    from mtal_ray.ray_session import ensure_ray
    from mtal_ray.training.trainer import train_model

    config_path = Path(args.config) if args.config else None
    cfg = load_config(config_path, args.overrides)
    output = Path(args.output) if args.output else Path("runs") / "train"
    identity = _claim_output(output, cfg, explicit=args.output is not None)
    # relative data paths start at the working directory, as for `mtal-ray run`
    tasks, train, dev, test = _load_data(cfg, Path.cwd())
    needs = cfg.training.gpu_needs()  # training only: `train` runs no scoring actor
    if needs:  # GPUs this machine cannot give: stop before writing anything
        ensure_ray(log_to_driver=False, gpus=needs)
    write_identity(output, identity)
    training = cfg.training.updated(seed=cfg.seed)
    result = train_model(train, dev, tasks, cfg.model, training, output, test=test)
    summary = result.summary()
    if args.json:
        sys.stdout.write(json.dumps(summary) + "\n")
    else:
        _print_table(summary)
    return 0


#: The file in a training directory that says which config it holds.
IDENTITY_FILE = "train_config.json"
#: Sections whose change makes a training directory hold a different training.
_IDENTITY_SECTIONS = ("seed", "data", "model", "training")


def training_identity(cfg: Any) -> dict[str, Any]:
    """``{"digest", "config"}``: the sections the user set that define a training."""
    import hashlib

    raw = cfg.model_dump(mode="json", exclude_defaults=True)
    config = {k: raw.get(k) for k in _IDENTITY_SECTIONS}
    text = json.dumps(config, sort_keys=True, default=str)
    return {"digest": hashlib.sha256(text.encode()).hexdigest()[:16], "config": config}


def _claim_output(output: Path, cfg: Any, *, explicit: bool) -> dict[str, Any]:
    """Refuse an output directory that holds the training of another config.

    Training resumes from the checkpoints in its output directory, so that directory must
    hold this config's training (or nothing): otherwise one line says so and nothing runs.
    """
    from mtal_ray.errors import MtalError

    identity = training_identity(cfg)
    where = f"--output {output}" if explicit else f"{output} (the default --output)"
    if output.exists() and not output.is_dir():
        raise MtalError(f"{where}: is a file, not a folder")
    if not output.is_dir() or not any(output.iterdir()):
        return identity
    try:
        stored = json.loads((output / IDENTITY_FILE).read_text(encoding="utf-8"))
        digest = stored.get("digest") if isinstance(stored, dict) else None
    except (OSError, ValueError):
        digest = None
    if digest == identity["digest"]:
        return identity
    held = (
        "a training of another config (seed/data/model/training differ)"
        if digest
        else f"files of an unknown training (no readable {IDENTITY_FILE})"
    )
    raise MtalError(
        f"{where} holds {held}; refusing to resume it with this config: pass --output DIR "
        "for a new training, or delete that folder to start over"
    )


def write_identity(output: Path, identity: dict[str, Any]) -> None:
    """Record which config ``output`` holds (``OUTPUT/train_config.json``)."""
    from mtal_ray.data.atomic import atomic_write_text
    from mtal_ray.errors import MtalError

    try:
        atomic_write_text(output / IDENTITY_FILE, json.dumps(identity, indent=1) + "\n")
    except OSError as err:
        raise MtalError(f"{output}: cannot write the training directory ({err})") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``mtal-ray train``."""
    parser = subparsers.add_parser(
        "train", help="train one model on the configured labeled data and report scores"
    )
    parser.add_argument("--config", help="experiment YAML (default: built-in defaults)")
    parser.add_argument("--output", help="run directory (default: runs/train)")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    parser.set_defaults(func=run_train)
