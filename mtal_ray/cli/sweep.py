"""``mtal-ray sweep --config configs/sweep_X.yaml [k=v …]`` and ``mtal-ray report SWEEP_DIR``."""

from __future__ import annotations

import argparse
from pathlib import Path

from mtal_ray.errors import ConfigError


def _sweep(args: argparse.Namespace) -> int:
    from mtal_ray.config import load_config
    from mtal_ray.logs import setup_logging
    from mtal_ray.sweep.tuner import run_sweep

    setup_logging("launcher", verbose=bool(getattr(args, "verbose", False)))
    config_path = Path(args.config)
    config = load_config(config_path, args.overrides)
    if getattr(config, "sweep", None) is None:
        raise ConfigError(
            f"{config_path}: no 'sweep:' section (use `mtal-ray run` for a single experiment)"
        )
    return run_sweep(config, config_path, args)


def _report(args: argparse.Namespace) -> int:
    from mtal_ray.sweep.report import write_report

    written = write_report(Path(args.sweep_dir), split=args.split)
    for path in written:
        print(path)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``mtal-ray sweep`` and ``mtal-ray report``."""
    sweep = subparsers.add_parser(
        "sweep", help="run (or resume) a Ray Tune sweep of AL experiments and its report"
    )
    sweep.add_argument("--config", required=True, help="experiment YAML with a 'sweep:' section")
    sweep.add_argument(
        "--run-dir",
        "--sweep-dir",
        dest="run_dir",
        help="sweep directory (default: <sweep.dir>/<sweep.name or config name>)",
    )
    sweep.add_argument(
        "--restart", action="store_true", help="delete the sweep directory first and start over"
    )
    sweep.add_argument("--verbose", action="store_true", help="show Ray's full output")
    sweep.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides")
    sweep.set_defaults(func=_sweep, local=False)
    report = subparsers.add_parser(
        "report", help="regenerate a sweep's comparison report from its stored trial results"
    )
    report.add_argument("sweep_dir", help="the sweep directory (holds trials/)")
    report.add_argument(
        "--split", choices=("test", "dev"), help="split to compare (default: the sweep's)"
    )
    report.set_defaults(func=_report)
