"""The ``mtal-ray`` command line: one program, one sub-command per component.

Every command lives in this package, one module per sub-command group (listed in
:data:`COMMAND_MODULES`), so adding a command never touches the others; the library below
``mtal_ray.cli`` never imports from it. Building the parser stays light: a command module
imports its heavy dependencies (torch, transformers, Ray, MLflow) only inside the function
that runs the command, so ``mtal-ray --help`` and the pure commands never load them. User
errors (:class:`~mtal_ray.errors.MtalError`) are printed as one line without a traceback
and the process exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from mtal_ray.errors import user_error
from mtal_ray.redact import redact_uri

#: Modules that expose ``register(subparsers)``; imported lazily by :func:`build_parser`.
COMMAND_MODULES: tuple[str, ...] = (
    "mtal_ray.cli.data",
    "mtal_ray.cli.run",
    "mtal_ray.cli.annotation",
    "mtal_ray.cli.sweep",
    "mtal_ray.cli.scoring",
    "mtal_ray.cli.selection",
    "mtal_ray.cli.training",
    "mtal_ray.cli.status",
    "mtal_ray.cli.predict",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the full ``mtal-ray`` argument parser with every registered sub-command."""
    parser = argparse.ArgumentParser(
        prog="mtal-ray",
        description="Multi-task active learning for pre-trained Transformers on Ray.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module_name in COMMAND_MODULES:
        module = importlib.import_module(module_name)
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except Exception as err:
        # Errors raised inside Ray actors arrive wrapped; show the user's error plainly.
        cause = user_error(err)
        if cause is None:
            raise
        print(f"error: {redact_uri(str(cause))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
