"""``mtal-ray data ...``: inspect, convert and generate corpora."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from mtal_ray.errors import MtalError

#: ``--format`` and ``--overlapping-entities`` choices, here so that building the parser
#: imports no pyarrow (``tests/test_layering.py`` checks them against the readers').
FORMATS = ("conllu", "slu", "jsonl", "conll")
OVERLAP_POLICIES = ("error", "keep-longest", "keep-shortest")


def parse_columns(text: str | None) -> dict[str, int] | None:
    """``token=0,ner=3`` -> ``{"token": 0, "ner": 3}`` (``--columns``)."""
    if text is None:
        return None
    columns: dict[str, int] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        try:
            if not sep:
                raise ValueError
            columns[key.strip()] = int(value)
        except ValueError:
            raise MtalError(
                f"--columns: {part!r} is not KEY=INDEX (e.g. --columns token=0,ner=-1)"
            ) from None
    return columns


def _stats(args: argparse.Namespace) -> int:
    from mtal_ray.data.corpus import load_corpus
    from mtal_ray.data.stats import corpus_stats

    corpus = load_corpus(
        args.path,
        args.format,
        **reading_options(args),
    )
    json.dump(corpus_stats(corpus), sys.stdout, indent=None if args.compact else 2)
    sys.stdout.write("\n")
    return 0


def _convert(args: argparse.Namespace) -> int:
    from mtal_ray.data.convert import convert_corpus

    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    written = convert_corpus(
        args.src,
        args.dst,
        args.to,
        format=args.format,
        tasks=tasks,
        **reading_options(args),
    )
    listed = ", ".join(f"{name} -> {path}" for name, path in written.items())
    print(f"converted {len(written)} split(s) to {args.to}: {listed}")
    return 0


def add_reading_options(parser: argparse.ArgumentParser) -> None:
    """``--format``, ``--strict-bio``, ``--overlapping-entities``, ``--columns``: how a
    command that reads a corpus reads it (``reading_options`` turns them into
    :func:`~mtal_ray.data.load_corpus` arguments)."""
    parser.add_argument("--format", choices=FORMATS, help="default: detected from the files")
    parser.add_argument("--strict-bio", action="store_true", help="refuse I- after O")
    parser.add_argument(
        "--overlapping-entities",
        choices=OVERLAP_POLICIES,
        default="error",
        help="nested/overlapping entity mentions (jsonl): refuse them (default) or keep the "
        "longest / the shortest of each overlapping set",
    )
    parser.add_argument(
        "--columns",
        metavar="KEY=I,...",
        help="conll: the token and tag columns, e.g. token=0,ner=-1 (default) or token=0,sf=3",
    )


def reading_options(args: argparse.Namespace) -> dict[str, Any]:
    """The :func:`~mtal_ray.data.load_corpus` keywords of ``add_reading_options``' flags."""
    return {
        "strict_bio": args.strict_bio,
        "overlapping_entities": args.overlapping_entities,
        "columns": parse_columns(args.columns),
    }


def _synth(args: argparse.Namespace) -> int:
    from mtal_ray.data.synthetic import write_synthetic_corpus

    root = write_synthetic_corpus(
        args.output, n_train=args.train, n_dev=args.dev, n_test=args.test, seed=args.seed
    )
    print(f"wrote the SYNTHETIC SF+ID corpus to {root}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``mtal-ray data stats``, ``mtal-ray data convert`` and ``mtal-ray data synth``."""
    data = subparsers.add_parser("data", help="inspect and generate corpora")
    sub = data.add_subparsers(dest="data_command", metavar="ACTION")
    sub.required = True
    stats = sub.add_parser(
        "stats", help="print sentences, tokens and label counts per split as one JSON object"
    )
    stats.add_argument("path", help="a split file, a split folder, or a folder of splits")
    add_reading_options(stats)
    stats.add_argument("--compact", action="store_true", help="print on one line")
    stats.set_defaults(func=_stats)
    convert = sub.add_parser(
        "convert", help="write every split of a corpus in another format (conllu|slu|jsonl|conll)"
    )
    convert.add_argument("src", help="a split file, a split folder, or a folder of splits")
    convert.add_argument("dst", help="the folder to write the converted splits into")
    convert.add_argument("--to", required=True, choices=FORMATS, help="the target format")
    convert.add_argument(
        "--tasks", help="comma-separated tasks to convert (default: every annotated task)"
    )
    add_reading_options(convert)
    convert.set_defaults(func=_convert)
    synth = sub.add_parser("synth", help="write the SYNTHETIC SF+ID quickstart corpus")
    synth.add_argument("output", help="folder to write train/, dev/, test/ into")
    synth.add_argument("--train", type=int, default=400)
    synth.add_argument("--dev", type=int, default=100)
    synth.add_argument("--test", type=int, default=100)
    synth.add_argument("--seed", type=int, default=0)
    synth.set_defaults(func=_synth)
