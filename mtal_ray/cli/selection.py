"""``mtal-ray select``: run one selection on a confidence table and write the JSON."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from mtal_ray.errors import MtalError, SelectionError

#: The methods ``--help`` lists, without importing numpy and the selectors to build the
#: parser (``tests/test_layering.py`` checks it against the registry).
METHOD_NAMES = (
    "st-r",
    "st-ec",
    "st-da",
    "mt-r",
    "mt-ec",
    "mt-da",
    "mt-avg",
    "mt-avgda",
    "mt-max",
    "mt-min",
    "mt-par",
    "mt-rrf",
    "mt-ind",
    "blp-udjs",
    "blp-eqb",
    "blp-joint-avg",
    "blp-joint-max",
    "blp-joint-min",
    "blp-joint-rrf",
    "blp-stcs",
)


def register(subparsers: Any) -> None:
    """Add the ``select`` sub-command to the ``mtal-ray`` parser."""
    p = subparsers.add_parser(
        "select",
        help="choose samples to annotate from a confidence table",
        description="Select samples from a confidence table (Parquet) and write their ids as "
        "JSON. Methods: " + ", ".join(METHOD_NAMES) + ".",
    )
    p.add_argument("--input", required=True, type=Path, help="confidence table (Parquet)")
    p.add_argument("--method", required=True, help="selection method, e.g. mt-par or blp-udjs")
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument("--n", type=int, help="number of samples to select")
    size.add_argument("--budget", type=float, help="annotation budget (GRD_AL or BLP)")
    p.add_argument("--weights", help="task weights, e.g. re=0.7,ner=0.3")
    p.add_argument("--beta", type=float, help="weight of --task; 1-beta shared by the others")
    p.add_argument("--task", help="task of ST-*/MT-EC/MT-DA/STCS, or the task --beta weighs")
    p.add_argument(
        "--uncertainty",
        choices=["mean", "total"],
        default="mean",
        help="a sentence's EC over its words: mean (the paper) or total (sum)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random methods")
    p.add_argument("--time-limit", type=float, help="seconds per BLP solver call (default 60)")
    p.add_argument("--tp", type=float, default=1.0, help="cost per entity (token-level tasks)")
    p.add_argument("--ts", type=float, default=3.0, help="cost per sentence (sentence tasks)")
    p.add_argument("--output", required=True, type=Path, help="where to write the JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the selection described by ``args``; raise SelectionError on a bad request."""
    from mtal_ray.data.atomic import atomic_write_text
    from mtal_ray.selection.cost import CostModel
    from mtal_ray.selection.registry import select
    from mtal_ray.selection.weights import parse_weights

    if not args.input.exists():
        raise SelectionError(f"{args.input}: no such file")
    _check_output(args.output)
    result = select(
        args.input,
        args.method,
        n=args.n,
        budget=args.budget,
        weights=parse_weights(args.weights) if args.weights else None,
        beta=args.beta,
        task=args.task,
        seed=args.seed,
        time_limit=args.time_limit,
        cost_model=CostModel(tp=args.tp, ts=args.ts),
        uncertainty=args.uncertainty,
    )
    try:
        atomic_write_text(args.output, result.to_json(indent=1, name=args.method.lower()) + "\n")
    except OSError as err:
        raise MtalError(f"--output {args.output}: cannot write it ({err.strerror})") from None
    print(f"{result.method}: selected {len(result.ids)} ids -> {args.output}")
    return 0


def _check_output(output: Path) -> None:
    """Refuse an ``--output`` that cannot be written before the selection runs."""
    if output.is_dir():
        raise MtalError(f"--output {output}: is a folder; give the JSON file to write")
    parent = output.parent
    while not parent.exists() and parent != parent.parent:  # missing folders are created
        parent = parent.parent
    if not parent.is_dir():
        raise MtalError(f"--output {output}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK) or (output.exists() and not os.access(output, os.W_OK)):
        raise MtalError(f"--output {output}: not writable (permission denied)")
