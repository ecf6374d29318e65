"""Relation extraction at evaluation time: the pair head's projected path against the plain
MLP over gathered mention vectors (the baseline: the head as it was, with its per-pair
index loop), in the same run on the same model.

The case that matters is early AL on CoNLL04: the NER head of a model trained on a few dozen
sentences (here: untrained, seed 0) proposes many mentions per sentence, pairs grow with
their square, and the round's dev evaluations and final test evaluation spent most of their
time in the relation head (a CoNLL04 round 0 of the stopping study: 190 s of dev
evaluations and 65 s for the 288 test sentences in an 812 s training).

Measured: ``mtal_ray.models.inference.evaluate`` (MiniLM-L6 NER+RE, dropout off, batch 64)
on CoNLL04's test split, and one MC-dropout pass over it (``predict_proba`` under
``mc_dropout``: what scoring repeats k times), best of ``--repeats``, baseline and ours
alternating; the mentions and pairs the NER head proposed; and that both evaluations give
the same predictions (scores equal). MC-dropout numbers differ by design (our path draws
dropout masks for the real pairs only), so only their time is compared.

    python benchmarks/relation_head.py          # ~3 min on 2 idle cores

Output: ``benchmarks/results/relation_head.json`` and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from mtal_ray.data.atomic import atomic_write_text

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "relation_head.json"
CONLL04 = REPO.parent / "shared" / "data" / "conll04"


def baseline_forward(self: Any, features: Any, entities: Any) -> Any:
    """The pair head's forward before the projected path: a ``torch.tensor`` per pair for
    the index, then the MLP over ``[B, P, 4 × hidden]`` gathered mention vectors."""
    import torch

    from mtal_ray.tasks.relation import entity_pairs

    pairs = [entity_pairs(len(row)) for row in entities]
    n_pairs = max((len(p) for p in pairs), default=0)
    batch, device = features.words.size(0), features.words.device
    index = torch.zeros(batch, max(n_pairs, 1), 4, dtype=torch.long)
    mask = torch.zeros(batch, max(n_pairs, 1), dtype=torch.bool)
    for row, (spans, row_pairs) in enumerate(zip(entities, pairs, strict=True)):
        for k, (h, t) in enumerate(row_pairs):
            index[row, k] = torch.tensor(
                [spans[h][0], spans[h][1] - 1, spans[t][0], spans[t][1] - 1]
            )
            mask[row, k] = True
    index = index.to(device)
    hidden = features.words.size(-1)
    gathered = features.words.gather(1, index.view(batch, -1, 1).expand(-1, -1, hidden)).view(
        batch, index.size(1), 4 * hidden
    )
    return self.mlp(gathered), mask.to(device), pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None, help="first N test sentences")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args(argv)
    if not CONLL04.is_dir():
        print(f"the CoNLL04 corpus is not at {CONLL04}", file=sys.stderr)
        return 2
    import torch

    from mtal_ray.data.corpus import load_corpus
    from mtal_ray.data.spans import bio_to_spans
    from mtal_ray.data.vocab import build_vocabs
    from mtal_ray.models import ModelConfig, build_model
    from mtal_ray.models.inference import evaluate, iter_batches, mc_dropout, predict_rows
    from mtal_ray.tasks.registry import build_tasks
    from mtal_ray.tasks.relation import PairHead

    corpus = load_corpus(CONLL04, "jsonl")
    test = corpus.splits["test"]
    if args.limit:
        test = test.slice(0, args.limit)
    tasks = ["ner", "re"]
    torch.manual_seed(0)
    vocabs = build_vocabs(corpus.splits["train"], tasks)
    model, collator = build_model(build_tasks(tasks, vocabs), ModelConfig())
    model.eval()
    rows = predict_rows(model, collator, test)
    mentions = [len(bio_to_spans(r.get("ner.tags") or [])) for r in rows]
    pairs = sum(n * (n - 1) for n in mentions)

    ours_forward = PairHead.forward
    times: dict[str, list[float]] = {"baseline": [], "projected": []}
    mc_times: dict[str, list[float]] = {"baseline": [], "projected": []}
    scores: dict[str, Any] = {}
    for _ in range(args.repeats):
        for arm, forward in (("baseline", baseline_forward), ("projected", ours_forward)):
            PairHead.forward = forward  # type: ignore[method-assign]
            started = time.perf_counter()
            with torch.inference_mode():
                scores[arm] = evaluate(model, collator, test)
            times[arm].append(time.perf_counter() - started)
            started = time.perf_counter()
            with mc_dropout(model):  # one MC-dropout pass (scoring runs k of them)
                for _rows, batch in iter_batches(collator, test, 64):
                    model.predict_proba(batch)
            mc_times[arm].append(time.perf_counter() - started)
    PairHead.forward = ours_forward  # type: ignore[method-assign]
    best = {arm: min(t) for arm, t in times.items()}
    mc_best = {arm: min(t) for arm, t in mc_times.items()}
    same = scores["baseline"] == scores["projected"]
    ratio = best["baseline"] / best["projected"]
    print(
        f"CoNLL04 test: {test.num_rows} sentences, untrained NER head (seed 0): "
        f"{sum(mentions)} mentions ({max(mentions)} at most in a sentence), {pairs} pairs"
    )
    print(
        f"| relation head | evaluate s (best of {args.repeats}) | sentences/s "
        "| one MC-dropout pass s | sentences/s |"
    )
    print("|---|---:|---:|---:|---:|")
    for arm, seconds in best.items():
        mc = mc_best[arm]
        print(
            f"| {arm} | {seconds:.2f} | {test.num_rows / seconds:.1f} | {mc:.2f} "
            f"| {test.num_rows / mc:.1f} |"
        )
    mc_ratio = mc_best["baseline"] / mc_best["projected"]
    print(
        f"\nbaseline / ours: evaluate {ratio:.2f}x, MC-dropout pass {mc_ratio:.2f}x; "
        f"same evaluation scores: {same}"
    )
    output = {
        "sentences": test.num_rows,
        "mentions": sum(mentions),
        "max_mentions": max(mentions),
        "pairs": pairs,
        "seconds": times,
        "best_s": best,
        "ratio": ratio,
        "mc_seconds": mc_times,
        "mc_best_s": mc_best,
        "mc_ratio": mc_ratio,
        "same_scores": same,
        "scores": scores["projected"][0],
        "threads": torch.get_num_threads(),
    }
    atomic_write_text(Path(args.output), json.dumps(output, indent=1) + "\n")
    print(f"wrote {args.output}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
