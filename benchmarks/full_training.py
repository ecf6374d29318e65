"""Full-training benchmark: the real training sets, the default encoder, this machine.

Trains one multi-task model per scenario with :func:`mtal_ray.training.train_model`
(Ray Train, DDP) and prints test scores next to majority baselines computed in the same
run:

==========  ========  =============================================================
scenario    tasks     baseline
==========  ========  =============================================================
atis        sf + id   sf: each word's most frequent training tag (unseen: O);
                      id: the most frequent intent
ewt_dp_ner  dp + ner  dp: each word attaches by the most frequent head offset, with
                      its word type's most frequent relation; ner: per-word majority
conll04     ner + re  ner: per-word majority; re: no relation (F1 0)
==========  ========  =============================================================

CPU budget: MiniLM-L6 trains at ~45 sentences/s on 2 cores, so a full epoch of EWT takes
minutes; ``--max-steps`` bounds each run (early stopping on the dev geometric mean may
stop sooner).

    python benchmarks/full_training.py --scenarios atis --max-steps 400
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa

from mtal_ray.data import build_vocabs, load_corpus
from mtal_ray.models import ModelConfig
from mtal_ray.models.inference import geometric_mean
from mtal_ray.tasks import build_tasks
from mtal_ray.training import TrainingConfig, train_model

SCENARIOS = {"atis": ["sf", "id"], "ewt_dp_ner": ["dp", "ner"], "conll04": ["ner", "re"]}
TAG_COLUMN = {"sf": "sf.tags", "ner": "ner.tags"}


def majority_predictions(train: pa.Table, test: pa.Table, tasks: list[str]) -> list[dict[str, Any]]:
    """Per test row, the baseline's prediction in contract column form."""
    tokens_train = train.column("tokens").to_pylist()
    preds: list[dict[str, Any]] = [{} for _ in range(test.num_rows)]
    tokens_test = test.column("tokens").to_pylist()
    for task in tasks:
        if task in TAG_COLUMN:
            column = TAG_COLUMN[task]
            by_word: dict[str, Counter[str]] = defaultdict(Counter)
            for words, tags in zip(tokens_train, train.column(column).to_pylist(), strict=True):
                for w, t in zip(words, tags or [], strict=False):
                    by_word[w.lower()][t] += 1
            for p, words in zip(preds, tokens_test, strict=True):
                tags = [
                    by_word[w.lower()].most_common(1)[0][0] if w.lower() in by_word else "O"
                    for w in words
                ]
                # repair I- without a preceding entity of the same type
                p[column] = [
                    f"B-{t[2:]}"
                    if t.startswith("I-") and (i == 0 or tags[i - 1][2:] != t[2:])
                    else t
                    for i, t in enumerate(tags)
                ]
        elif task == "id":
            majority = Counter(x for x in train.column("id.label").to_pylist() if x).most_common(1)[
                0
            ][0]
            for p in preds:
                p["id.label"] = majority
        elif task == "dp":
            offsets: Counter[int] = Counter()
            rel_by_word: dict[str, Counter[str]] = defaultdict(Counter)
            all_rels: Counter[str] = Counter()
            heads_col = train.column("dp.head").to_pylist()
            rels_col = train.column("dp.deprel").to_pylist()
            for words, heads, rels in zip(tokens_train, heads_col, rels_col, strict=True):
                if heads is None:
                    continue
                for i, (w, h, r) in enumerate(zip(words, heads, rels, strict=True)):
                    offsets[h - (i + 1) if h else 0] += 1
                    rel_by_word[w.lower()][r] += 1
                    all_rels[r] += 1
            offset = next(o for o, _ in offsets.most_common() if o != 0)
            default_rel = all_rels.most_common(1)[0][0]
            for p, words in zip(preds, tokens_test, strict=True):
                n = len(words)
                heads = [i + 1 + offset if 1 <= i + 1 + offset <= n else 0 for i in range(n)]
                p["dp.head"] = heads
                p["dp.deprel"] = [
                    rel_by_word[w.lower()].most_common(1)[0][0]
                    if w.lower() in rel_by_word
                    else default_rel
                    for w in words
                ]
        elif task == "re":
            for p in preds:
                p["re.relations"] = []
    return preds


def baseline_scores(train: pa.Table, test: pa.Table, tasks: list[str]) -> dict[str, float]:
    """Main test score per task of the majority baseline."""
    plugins = build_tasks(tasks, build_vocabs(train, tasks))
    preds = majority_predictions(train, test, tasks)
    return {t: plugins[t].evaluate(preds, test)["main"] for t in tasks}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default="../shared/data", help="folder with the three corpora")
    parser.add_argument("--scenarios", default="atis,ewt_dp_ner,conll04")
    parser.add_argument("--output", default="runs/benchmark_full_training")
    parser.add_argument("--max-steps", type=int, default=600)
    parser.add_argument("--eval-every", type=int, default=150)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--head-lr", type=float, default=1e-3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sharing", default="smt")
    parser.add_argument("--limit-dev", type=int, default=500, help="dev rows for early stopping")
    args = parser.parse_args()

    import ray

    ray.init(include_dashboard=False, log_to_driver=False)
    rows = []
    for name in args.scenarios.split(","):
        tasks = SCENARIOS[name]
        corpus = load_corpus(Path(args.data) / name)
        train, dev, test = (corpus.splits[s] for s in ("train", "dev", "test"))
        dev = dev.slice(0, args.limit_dev)
        base = baseline_scores(train, test, tasks)
        training = TrainingConfig(
            num_workers=args.workers,
            batch_size=args.batch_size,
            lr=args.lr,
            head_lr=args.head_lr,
            max_steps=args.max_steps,
            eval_every=args.eval_every,
            patience=args.patience,
        )
        started = time.perf_counter()
        result = train_model(
            train,
            dev,
            tasks,
            ModelConfig(sharing=args.sharing),
            training,
            Path(args.output).absolute() / name,
            test=test,
        )
        row = {
            "scenario": name,
            "train_rows": train.num_rows,
            "steps": result.steps,
            "best_step": result.best_step,
            "wall_s": round(time.perf_counter() - started, 1),
            "test": result.test_scores,
            "test_metrics": result.test_metrics,
            "baseline": base,
            "test_gmean": result.test_gmean,
            "baseline_gmean": geometric_mean(list(base.values())),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    ray.shutdown()

    print(f"\n{'scenario':<12}{'task':<6}{'model':>8}{'baseline':>10}{'steps':>7}{'wall s':>8}")
    for row in rows:
        for task in row["test"]:
            print(
                f"{row['scenario']:<12}{task:<6}{row['test'][task]:>8.4f}"
                f"{row['baseline'][task]:>10.4f}{row['steps']:>7}{row['wall_s']:>8.0f}"
            )


if __name__ == "__main__":
    main()
