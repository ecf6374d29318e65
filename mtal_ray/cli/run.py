"""``mtal-ray run`` and ``python -m mtal_ray.launch --config configs/X.yaml [k=v …]``.

The main job. Connects to the Ray cluster named by ``RAY_ADDRESS`` (or the one ``ray job
submit`` runs in), otherwise starts a local Ray; then runs the AL experiment in a driver
actor — or, when the config has a ``sweep:`` section, a Ray Tune sweep. Relaunching the same
command resumes an interrupted run from its run directory. ``mtal_ray.launch`` is a thin
alias of :func:`main`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mtal_ray.errors import user_error
from mtal_ray.ray_session import warn_if_ephemeral
from mtal_ray.redact import redact_uri
from mtal_ray.run_lock import clear_directory, locked


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by ``python -m mtal_ray.launch`` and ``mtal-ray run``."""
    parser.add_argument("--config", required=True, help="experiment YAML (see configs/)")
    parser.add_argument("--run-dir", help="run directory (default: al.run_dir or runs/<config>)")
    parser.add_argument(
        "--restart", action="store_true", help="delete the run directory first and start over"
    )
    parser.add_argument(
        "--local", action="store_true", help="run the loop in this process (no driver actor)"
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show Ray's full output (default: our progress lines and Ray's useful ones)",
    )
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides")


def resolve_run_dir(config: Any, config_path: Path, explicit: str | None) -> Path:
    """``--run-dir``, else ``al.run_dir``, else ``runs/<config file stem>`` (absolute).

    Relative paths in a config (``data.path``, ``al.run_dir``) are relative to the working
    directory: the repository root locally, the uploaded working dir under ``ray job submit``.
    """
    chosen = explicit or config.al.run_dir or str(Path("runs") / config_path.stem)
    return Path(chosen).expanduser().resolve()


def _print_summary(summary: Any) -> None:
    """The run's per-iteration table (fits 80 columns and files: :mod:`.tables`)."""
    from rich.console import Console

    from mtal_ray.cli.tables import render_rounds

    console = Console()
    for table in render_rounds(
        summary.rows, title=f"mtal_ray: {summary.run_dir}", width=console.width
    ):
        console.print(table)
    console.print(summary.message, soft_wrap=True)
    if summary.mlflow_run_id:
        console.print(f"MLflow run {summary.mlflow_run_id}")


def run_experiment(args: argparse.Namespace) -> int:
    """Load the config and run (or resume) the experiment; returns the exit status."""
    from mtal_ray.config import load_config
    from mtal_ray.logs import setup_logging

    setup_logging("launcher", verbose=bool(getattr(args, "verbose", False)))
    config_path = Path(args.config)
    config = load_config(config_path, args.overrides)
    if getattr(config, "sweep", None) is not None:
        from mtal_ray.sweep import run_sweep

        return run_sweep(config, config_path, args)
    run_dir = resolve_run_dir(config, config_path, args.run_dir)
    # one process per run directory, taken before Ray starts or anything is written
    with locked(run_dir, what="run directory", command="mtal-ray run"):
        if args.restart:
            clear_directory(run_dir)
        return run_loop(config, run_dir, Path.cwd(), local=args.local)


def run_loop(config: Any, run_dir: Path, base_dir: Path, *, local: bool = False) -> int:
    """Run (or resume) one AL experiment in a driver actor (or in this process).

    Holds the run directory's lock (:mod:`mtal_ray.run_lock`) while it runs; a caller that
    already holds it (``mtal-ray run``, ``mtal-ray import``) keeps it.
    """
    with locked(run_dir, what="run directory", command="mtal-ray run"):
        return _run_loop(config, run_dir, base_dir, local=local)


def _run_loop(config: Any, run_dir: Path, base_dir: Path, *, local: bool) -> int:
    from mtal_ray.mlflow_tracking import ENTRY_POINT_ENV, entry_point

    warn_if_ephemeral("run directory", run_dir)
    if config.annotation.mode == "label-studio":  # token and server, before Ray starts
        from mtal_ray.label_studio.annotator import check_label_studio

        check_label_studio(config)
    # The MLflow run's source is this command, also when the loop runs in a Ray worker
    # (workers of a Ray started here inherit the variable).
    os.environ.setdefault(ENTRY_POINT_ENV, entry_point())
    from mtal_ray.ray_session import ensure_ray, gpu_needs

    needs = gpu_needs([config])
    if needs or not local:  # GPUs wanted: fail now on a machine that has none
        ensure_ray(gpus=needs)
    if local:
        from mtal_ray.driver.loop import ActiveLearningLoop

        summary = ActiveLearningLoop(config, run_dir, base_dir, echo=print).run()
    else:
        from mtal_ray.driver.actor import run_on_ray

        summary = run_on_ray(config, run_dir, base_dir)
    _print_summary(summary)
    return 0


def _run(args: argparse.Namespace) -> int:
    return run_experiment(args)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``mtal-ray run``."""
    run = subparsers.add_parser("run", help="run or resume an AL experiment (the main job)")
    add_run_arguments(run)
    run.set_defaults(func=_run)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m mtal_ray.launch``."""
    parser = argparse.ArgumentParser(
        prog="python -m mtal_ray.launch", description="Run or resume an MT-AL experiment."
    )
    add_run_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_experiment(args)
    except KeyboardInterrupt:
        print("interrupted; relaunch the same command to resume", file=sys.stderr)
        return 130
    except Exception as err:
        cause = user_error(err)  # also behind Ray's wrappers
        if cause is None:
            raise
        print(f"error: {redact_uri(str(cause))}", file=sys.stderr)
        return 2
