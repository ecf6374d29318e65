"""``mtal-ray import``: validate a human-annotated batch, store it and resume the run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mtal_ray.errors import MtalError


def _import(args: argparse.Namespace) -> int:
    from mtal_ray.run_lock import locked

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        what = "a file" if run_dir.exists() else "no such folder"
        raise MtalError(f"{run_dir}: not a run directory ({what})")
    # the run's lock, before anything is read or written (also held while it resumes)
    with locked(run_dir, what="run directory", command="mtal-ray import"):
        return _import_locked(args, run_dir)


def _import_locked(args: argparse.Namespace, run_dir: Path) -> int:
    from mtal_ray.driver.annotation import import_annotations, read_manifest
    from mtal_ray.driver.state import load_state, save_state

    state = load_state(run_dir)
    if state is None:
        raise MtalError(f"{run_dir}: not a run directory (no state.json)")
    if state.step != "annotate":
        raise MtalError(
            f"{run_dir}: no batch is waiting for annotation (iteration {state.iteration}, "
            f"next step {state.step})"
        )
    source = getattr(args, "source", "files")
    if source == "label-studio":
        if args.files:
            raise MtalError("mtal-ray import --from label-studio takes no files")
        table, accepted = _pull_label_studio(args, run_dir, state.iteration)
    else:
        if not args.files:
            raise MtalError("give the annotated file(s) to import (or --from label-studio)")
        read_manifest(run_dir, state.iteration)
        accepted = {}
        table = import_annotations(
            run_dir,
            state.iteration,
            [Path(f) for f in args.files],
            allow_new_labels=args.allow_new_labels,
            new_labels=accepted,
        )
    for task, labels in accepted.items():
        listed = ", ".join(f"{label} ({count})" for label, count in labels.items())
        print(f"accepted {task} labels not in the training label set: {listed}")
    state.step = "update"
    save_state(run_dir, state)
    print(f"imported {table.num_rows} annotated sentences for round {state.iteration}")
    if args.no_resume:
        print("relaunch the experiment (same command) to continue")
        return 0
    from mtal_ray.cli.run import run_loop

    config, base_dir = stored_experiment(run_dir)
    print(f"resuming {run_dir}")
    return run_loop(config, run_dir, base_dir, local=args.local)


def _pull_label_studio(
    args: argparse.Namespace, run_dir: Path, iteration: int
) -> tuple[Any, dict[str, dict[str, int]]]:
    """The round's completed Label Studio tasks, validated and stored (or one error)."""
    from mtal_ray.label_studio.annotator import pull_round
    from mtal_ray.label_studio.client import client_from_config

    config, _ = stored_experiment(run_dir)
    if config.annotation.mode != "label-studio":
        raise MtalError(
            f"{run_dir}: this run annotates with annotation.mode={config.annotation.mode}, "
            "not label-studio"
        )
    client = client_from_config(config.annotation.label_studio)
    status = pull_round(client, run_dir, iteration, allow_new_labels=args.allow_new_labels)
    if status.imported is None:
        raise MtalError(
            f"{status.line} in Label Studio ({status.project_url}); nothing imported — "
            "import again when every sentence is annotated"
        )
    print(f"{status.line} in Label Studio ({status.project_url})")
    return status.imported, status.new_labels


def stored_experiment(run_dir: Path) -> tuple[Any, Path]:
    """The config a run was started with and the directory its relative paths start from."""
    from mtal_ray.config import ExperimentConfig, validate
    from mtal_ray.driver.state import LAUNCH_FILE
    from mtal_ray.redact import is_redacted, restore_uri

    try:
        raw = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise MtalError(f"{run_dir}: cannot read the run's config.json ({err})") from None
    try:
        launched = json.loads((run_dir / LAUNCH_FILE).read_text(encoding="utf-8"))
        base_dir = Path(launched["base_dir"])
    except (OSError, ValueError, KeyError):  # runs from before launch.json: the cwd
        base_dir = Path.cwd()
    tracking = raw.get("tracking") if isinstance(raw, dict) else None
    if isinstance(tracking, dict) and is_redacted(tracking.get("tracking_uri")):
        # config.json holds the URI without its password: connect with the environment's
        tracking["tracking_uri"] = restore_uri(tracking["tracking_uri"])
    return validate(ExperimentConfig, raw), base_dir


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``mtal-ray import``."""
    imp = subparsers.add_parser(
        "import", help="validate a human-annotated batch, store it and resume the run"
    )
    imp.add_argument("run_dir", help="the run directory waiting for annotation")
    imp.add_argument("files", nargs="*", help="the annotated file(s) (or split folder for slu)")
    imp.add_argument(
        "--from",
        dest="source",
        choices=("files", "label-studio"),
        default="files",
        help="where the annotation is: the files given (default) or the run's Label Studio "
        "project (annotation.mode=label-studio; imports only a complete round)",
    )
    imp.add_argument(
        "--no-resume", action="store_true", help="only validate and store; relaunch later"
    )
    imp.add_argument(
        "--local", action="store_true", help="resume in this process (no driver actor)"
    )
    imp.add_argument(
        "--allow-new-labels",
        action="store_true",
        help="accept labels the round's model was not trained with (default: an error)",
    )
    imp.set_defaults(func=_import)
