"""``mtal-ray data ...``: inspect and generate corpora."""

from __future__ import annotations

import argparse
import json
import sys

from mtal_ray.data.corpus import FORMATS, load_corpus
from mtal_ray.data.stats import corpus_stats
from mtal_ray.data.synthetic import write_synthetic_corpus


def _stats(args: argparse.Namespace) -> int:
    corpus = load_corpus(args.path, args.format, strict_bio=args.strict_bio)
    json.dump(corpus_stats(corpus), sys.stdout, indent=None if args.compact else 2)
    sys.stdout.write("\n")
    return 0


def _synth(args: argparse.Namespace) -> int:
    root = write_synthetic_corpus(
        args.output, n_train=args.train, n_dev=args.dev, n_test=args.test, seed=args.seed
    )
    print(f"wrote the SYNTHETIC SF+ID corpus to {root}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``mtal-ray data stats`` and ``mtal-ray data synth``."""
    data = subparsers.add_parser("data", help="inspect and generate corpora")
    sub = data.add_subparsers(dest="data_command", metavar="ACTION")
    sub.required = True
    stats = sub.add_parser(
        "stats", help="print sentences, tokens and label counts per split as one JSON object"
    )
    stats.add_argument("path", help="a split file, a split folder, or a folder of splits")
    stats.add_argument("--format", choices=FORMATS, help="default: detected from the files")
    stats.add_argument("--strict-bio", action="store_true", help="refuse I- after O")
    stats.add_argument("--compact", action="store_true", help="print on one line")
    stats.set_defaults(func=_stats)
    synth = sub.add_parser("synth", help="write the SYNTHETIC SF+ID quickstart corpus")
    synth.add_argument("output", help="folder to write train/, dev/, test/ into")
    synth.add_argument("--train", type=int, default=400)
    synth.add_argument("--dev", type=int, default=100)
    synth.add_argument("--test", type=int, default=100)
    synth.add_argument("--seed", type=int, default=0)
    synth.set_defaults(func=_synth)
