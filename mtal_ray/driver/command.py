"""``mtal-ray run`` (same as ``python -m mtal_ray.launch``) and ``mtal-ray import``."""

from __future__ import annotations

import argparse
from pathlib import Path

from mtal_ray.driver.annotation import import_annotations, read_manifest
from mtal_ray.driver.state import load_state, save_state
from mtal_ray.errors import MtalError


def _run(args: argparse.Namespace) -> int:
    from mtal_ray.launch import run_experiment

    return run_experiment(args)


def _import(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    state = load_state(run_dir)
    if state is None:
        raise MtalError(f"{run_dir}: not a run directory (no state.json)")
    if state.step != "annotate":
        raise MtalError(
            f"{run_dir}: no batch is waiting for annotation (iteration {state.iteration}, "
            f"next step {state.step})"
        )
    read_manifest(run_dir, state.iteration)
    table = import_annotations(run_dir, state.iteration, [Path(f) for f in args.files])
    state.step = "update"
    save_state(run_dir, state)
    print(
        f"imported {table.num_rows} annotated sentences for round {state.iteration}; "
        "relaunch the experiment to continue"
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``mtal-ray run`` and ``mtal-ray import``."""
    from mtal_ray.launch import add_run_arguments

    run = subparsers.add_parser("run", help="run or resume an AL experiment (the main job)")
    add_run_arguments(run)
    run.set_defaults(func=_run)
    imp = subparsers.add_parser(
        "import", help="validate and store a human-annotated batch, so the run can continue"
    )
    imp.add_argument("run_dir", help="the run directory waiting for annotation")
    imp.add_argument("files", nargs="+", help="the annotated file(s) (or split folder for slu)")
    imp.set_defaults(func=_import)
