"""``mtal-ray predict``: pre-annotate a corpus with a trained model.

``--model`` is an MLflow model URI (``models:/NAME/1``, ``models:/NAME@alias``,
``models:/<model id>``, ``runs:/<run id>/…``) or a run directory (its final model) or a
checkpoint folder. The corpus (``--data``: one split file or folder, or a corpus folder of
splits, any format mtal-ray reads) is written to ``--output`` in its own format, every task
the model predicts filled in with its predictions (other columns kept): the starting point
for annotators of the next corpus.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mtal_ray.cli.data import add_reading_options, reading_options
from mtal_ray.errors import MtalError

__all__ = ["register"]


def _predict(args: argparse.Namespace) -> int:
    from mtal_ray.data import load_corpus, split_path, write_split
    from mtal_ray.data.slu import is_slu_folder
    from mtal_ray.mlflow_model import load_predictor

    data, output = Path(args.data), Path(args.output)
    if output.resolve() == data.resolve():
        raise MtalError(f"--output {output} is the input corpus: write the predictions elsewhere")
    corpus = load_corpus(data, args.format, **reading_options(args))
    predictor = load_predictor(args.model, tracking_uri=args.tracking_uri)
    single = data.is_file() or (corpus.format == "slu" and is_slu_folder(data))
    written = []
    for name, table in corpus.splits.items():
        predicted = predictor(table)
        if predicted.column("id").to_pylist() != table.column("id").to_pylist():
            raise MtalError(f"{args.model}: predictions came back in another order")
        merged = table
        for column in predicted.column_names:
            if column in ("id", "tokens"):
                continue
            values = predicted.column(column)
            if column in merged.column_names:
                merged = merged.set_column(merged.column_names.index(column), column, values)
            else:
                merged = merged.append_column(column, values)
        target = output if single else split_path(output, name, corpus.format)
        write_split(merged, target, corpus.format, corpus.columns)
        written.append(f"{target} ({table.num_rows} sentences)")
    print(f"predicted with {args.model}: " + ", ".join(written))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``mtal-ray predict``."""
    parser = subparsers.add_parser(
        "predict",
        help="pre-annotate a corpus with a trained model (MLflow model URI or run directory)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model",
        required=True,
        help="models:/NAME/VERSION, models:/<id>, runs:/<run>/model, a run dir or a checkpoint",
    )
    parser.add_argument("--data", required=True, help="corpus split file/folder or corpus folder")
    parser.add_argument("--output", required=True, help="where to write it (same format)")
    add_reading_options(parser)
    parser.add_argument(
        "--tracking-uri", help="MLflow store of a models:/ URI (default: $MLFLOW_TRACKING_URI)"
    )
    parser.set_defaults(func=_predict)
