"""``mtal-ray score``: score a corpus split with a trained checkpoint into a confidence table."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from mtal_ray.cli.data import add_reading_options, reading_options
from mtal_ray.errors import ConfigError, MtalError, ScoringError

if TYPE_CHECKING:
    from mtal_ray.scoring.config import ScoringConfig

__all__ = ["check_checkpoint", "register", "scoring_config_from_overrides"]


def scoring_config_from_overrides(overrides: list[str], ec_only: bool = False) -> ScoringConfig:
    """A :class:`ScoringConfig` from ``key=value`` overrides (``scoring.`` prefix optional)."""
    from mtal_ray.config import apply_overrides, validate
    from mtal_ray.scoring.config import ScoringConfig

    prefixed = [o if o.startswith("scoring.") else f"scoring.{o}" for o in overrides]
    for text in prefixed:
        if "=" not in text:
            raise ConfigError(f"override {text!r} is not of the form key=value")
    raw = apply_overrides({}, prefixed).get("scoring", {})
    if ec_only:
        raw["ec_only"] = True
    return validate(ScoringConfig, raw, prefix="scoring.")


def check_checkpoint(directory: Path) -> None:
    """Refuse a missing or incomplete checkpoint directory in one line (no torch, no Ray).

    A checkpoint holds ``meta.json`` (an object with ``tasks``, ``vocabs`` and ``model``),
    ``encoder/`` and the weights (``model.pt``, or DeepSpeed shards in ``deepspeed/``).
    """
    import json

    if not directory.exists():
        raise ScoringError(f"{directory}: no such checkpoint")
    if not directory.is_dir():
        raise ScoringError(f"{directory}: not a checkpoint directory (a file)")
    meta = directory / "meta.json"
    try:
        info = json.loads(meta.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScoringError(f"{directory}: not a checkpoint (no meta.json)") from None
    except (OSError, ValueError) as err:
        raise ScoringError(f"{meta}: cannot read the checkpoint's meta.json ({err})") from None
    missing = [
        k for k in ("tasks", "vocabs", "model") if not isinstance(info, dict) or k not in info
    ]
    if missing:
        raise ScoringError(f"{meta}: not a checkpoint's meta.json (no {', '.join(missing)})")
    if not (directory / "encoder").is_dir():
        raise ScoringError(f"{directory}: incomplete checkpoint (no encoder/)")
    if not (directory / "model.pt").is_file() and not (directory / "deepspeed").is_dir():
        raise ScoringError(f"{directory}: incomplete checkpoint (no model.pt and no deepspeed/)")


def _pick_split(corpus: object, split: str | None) -> tuple[str, object]:
    splits = corpus.splits  # type: ignore[attr-defined]
    if split is not None:
        return split, corpus.split(split)  # type: ignore[attr-defined]
    if len(splits) == 1:
        return next(iter(splits.items()))
    raise MtalError(
        f"{corpus.path}: holds several splits ({', '.join(splits)}); "  # type: ignore[attr-defined]
        "choose one with --split"
    )


def _score(args: argparse.Namespace) -> int:
    import ray

    from mtal_ray.data.corpus import load_corpus
    from mtal_ray.ray_session import ensure_ray
    from mtal_ray.scoring.pool import score_pool_to_file, scoring_progress_text

    cfg = scoring_config_from_overrides(args.overrides, args.ec_only)
    check_checkpoint(Path(args.checkpoint))  # before the corpus is read and Ray starts
    corpus = load_corpus(args.data, args.format, **reading_options(args))
    name, pool = _pick_split(corpus, args.split)
    if args.limit is not None:
        pool = pool.slice(0, args.limit)
    if cfg.calibrate:
        cfg = cfg.updated(temperatures=_calibrate(args, corpus, cfg.tasks))
    started_ray = ensure_ray(log_to_driver=False, gpus=cfg.gpu_needs())
    try:
        start = time.perf_counter()
        table = score_pool_to_file(
            pool,
            args.checkpoint,
            args.output,
            cfg,
            progress=lambda done, total, secs: print(
                scoring_progress_text(done, total, secs), file=sys.stderr, flush=True
            ),
        )
        seconds = time.perf_counter() - start
    finally:
        if started_ray:
            ray.shutdown()
    _summary(table, name, args.output, seconds)
    return 0


def _calibrate(args: argparse.Namespace, corpus: object, tasks: list[str] | None) -> dict:
    """Temperatures fitted on ``--calibration-data`` (default: the corpus's dev split)."""
    from mtal_ray.data.corpus import load_corpus
    from mtal_ray.scoring.calibration import calibrate_checkpoint, describe_temperatures

    if args.calibration_data:
        source = load_corpus(args.calibration_data, args.format, **reading_options(args))
        name, dev = _pick_split(source, "dev" if "dev" in source.splits else None)
    elif "dev" in corpus.splits:  # type: ignore[attr-defined]
        name, dev = "dev", corpus.split("dev")  # type: ignore[attr-defined]
    else:
        raise ConfigError(
            "calibrate=true fits temperatures on annotated data: --data has no dev split, "
            "so pass --calibration-data PATH"
        )
    temperatures = calibrate_checkpoint(args.checkpoint, dev, tasks)
    shown = describe_temperatures(temperatures)
    print(f"calibrated on {name} ({dev.num_rows} sentences): {shown}", file=sys.stderr)
    return temperatures


def _summary(table: object, split: str, output: str, seconds: float) -> None:
    from rich.console import Console
    from rich.table import Table

    columns = [c for c in table.column_names if c.endswith((".ec", ".da"))]  # type: ignore[attr-defined]
    view = Table(title=f"confidence of {table.num_rows} sentences ({split}) -> {output}")  # type: ignore[attr-defined]
    view.add_column("column")
    for stat in ("mean", "min", "max"):
        view.add_column(stat, justify="right")
    for col in columns:
        values = table.column(col).to_numpy()  # type: ignore[attr-defined]
        view.add_row(col, f"{values.mean():.4f}", f"{values.min():.4f}", f"{values.max():.4f}")
    console = Console()
    console.print(view)
    rate = table.num_rows / seconds if seconds > 0 else float("inf")  # type: ignore[attr-defined]
    console.print(f"{seconds:.1f} s, {rate:.1f} sentences/s")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``mtal-ray score``."""
    parser = subparsers.add_parser(
        "score",
        help="score an unlabeled pool with MC-dropout confidences (EC, DA) into Parquet",
        description="Score every sentence of a corpus split with a trained checkpoint: "
        "entropy-based confidence (EC) and, unless --ec-only, dropout agreement (DA) over k "
        "MC-dropout passes. Overrides set the scoring config section, e.g. k=10 "
        "concurrency=2 batch_size=64 cpus_per_actor=1.",
    )
    parser.add_argument("--checkpoint", required=True, help="trained checkpoint directory")
    parser.add_argument(
        "--data", required=True, help="a corpus file, split folder or corpus folder"
    )
    parser.add_argument("--output", required=True, help="confidence table to write (.parquet)")
    parser.add_argument("--split", help="split to score when --data holds several")
    add_reading_options(parser)
    parser.add_argument("--ec-only", action="store_true", help="one deterministic pass, no DA")
    parser.add_argument("--limit", type=int, help="score only the first N sentences")
    parser.add_argument(
        "--calibration-data",
        help="annotated data to fit temperatures on with calibrate=true (default: the dev "
        "split of --data)",
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="scoring config keys")
    parser.set_defaults(func=_score)
