"""Benchmark: MC-dropout pool scoring, our Ray Data path against two baselines.

Scores the same pool with the same model (k stochastic passes) along four routes and
prints sentences/s:

(a) a plain single-process PyTorch loop over padded batches in pool order: one
    deterministic pass and ``k`` separate stochastic forwards per batch;
(b) our path, :func:`mtal_ray.scoring.pool.score_pool` (length buckets, the ``k`` passes
    stacked into few forwards, ``torch.inference_mode``) with 1 actor (2 threads) and with
    2 actors (1 thread each) on a 2-CPU Ray instance;
(c) BaaL's MC dropout (``MCDropoutModule`` + ``ModelWrapper.predict_on_batch`` with
    ``iterations=k``) over the same padded batches as (a) — skipped if baal is absent
    (install it outside the package: ``pip install --no-deps baal structlog torchmetrics
    lightning-utilities``);
(d) the model FLOP/s our path reaches on the real (unpadded) sub-word tokens, against the
    fp32 matrix-multiply throughput measured on this machine in the same run.

EC/DA post-processing is the same numpy for every route, and the deterministic EC of (a)
and (b) is checked to agree. Ray Data wall time includes actor start-up and model loading;
the "steady" column subtracts the time the same route needs for a 16-sentence pool.

With ``--mc-layers N`` it measures **partial MC dropout** instead (``scoring.mc_layers``):
on ATIS, EWT and CoNLL04 pools (``--corpora``), a model fine-tuned for ``--train-steps``
steps on the split's first sentences scores the last ``--limit`` sentences in process with
full MC (every layer stochastic, the paper's) and with only the top N encoder layers
stochastic, and prints the throughput ratio, the Spearman correlation of each task's DA
against full MC, and the overlap of the MT-AVG selections on DA (10 % of the pool); the
yardstick for both is full MC against itself with other dropout masks (seed 1).

Usage::

    python benchmarks/scoring.py --data ../shared/data/atis --split train --limit 1000
    python benchmarks/scoring.py --data ../shared/data/ewt_dp_ner/train.conllu --limit 500
    python benchmarks/scoring.py --mc-layers 2 --limit 600 --train-steps 200
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pyarrow as pa
import torch

from mtal_ray.confidence import dropout_agreement
from mtal_ray.data.corpus import load_corpus
from mtal_ray.data.vocab import build_vocabs
from mtal_ray.models import ModelConfig, build_model, deterministic, mc_dropout
from mtal_ray.scoring.config import ScoringConfig
from mtal_ray.scoring.model_adapter import MultiTaskScoringModel
from mtal_ray.scoring.outputs import score_outputs
from mtal_ray.scoring.pool import score_pool
from mtal_ray.tasks.registry import build_tasks

SETTINGS: dict[str, Any] = {}
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def bench_model(checkpoint: str = "") -> MultiTaskScoringModel:
    """The benchmark model: a checkpoint, or the default encoder with seeded fresh heads."""
    if SETTINGS.get("checkpoint"):
        from mtal_ray.scoring.model_adapter import load_scoring_model

        return load_scoring_model(SETTINGS["checkpoint"])
    torch.manual_seed(0)
    tasks = build_tasks(SETTINGS["tasks"], SETTINGS["vocabs"])
    model, collator = build_model(tasks, ModelConfig())
    return MultiTaskScoringModel(model, collator)


def matmul_gflops(threads: int = 2, repeats: int = 5) -> float:
    """Best fp32 matmul throughput (GFLOP/s) over square sizes 1024..2048."""
    torch.set_num_threads(threads)
    best = 0.0
    for n in (1024, 1536, 2048):
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            best = max(best, 2 * n**3 / (time.perf_counter() - start) / 1e9)
    return best


def padded_batches(pool: pa.Table, batch_size: int) -> list[pa.Table]:
    return [pool.slice(i, batch_size) for i in range(0, pool.num_rows, batch_size)]


def plain_loop(pool: pa.Table, k: int, batch_size: int) -> tuple[float, dict[str, np.ndarray]]:
    """(a): pool order, padded batches, one forward per pass."""
    torch.set_num_threads(2)
    sm = bench_model()
    model, collator, tasks = sm.model, sm.collator, sm.tasks
    ec: dict[str, list[np.ndarray]] = {t: [] for t in tasks}
    start = time.perf_counter()
    for rows in padded_batches(pool, batch_size):
        batch = collator(rows, with_targets=False)
        with deterministic(model):
            det = sm._outputs(model.predict_proba(batch), tasks, batch.n_words, False)
        samples = []
        for _ in range(k):
            with mc_dropout(model):
                samples.append(sm._outputs(model.predict_proba(batch), tasks, batch.n_words, False))
        cols = score_outputs(det, samples)
        for t in tasks:
            ec[t].append(cols[f"{t}.ec"])
    seconds = time.perf_counter() - start
    return seconds, {t: np.concatenate(v) for t, v in ec.items()}


class BaalInput(torch.nn.Module):
    """Adapts the multi-task model to BaaL's ``model(tensor_list) -> tensors`` contract."""

    def __init__(self, sm: MultiTaskScoringModel) -> None:
        super().__init__()
        self.sm = sm
        self.inner = sm.model

    def forward(self, data: list[torch.Tensor]) -> list[torch.Tensor]:
        from mtal_ray.models.collate import Batch

        input_ids, attention_mask, word_index, word_mask = data
        n_words = word_mask.sum(1).tolist()
        batch = Batch(
            ids=[""] * len(n_words),
            table=pa.table({}),
            input_ids=input_ids,
            attention_mask=attention_mask,
            word_index=word_index,
            word_mask=word_mask.bool(),
            n_words=n_words,
        )
        probs = self.inner.predict_proba(batch)
        out = []
        for name in self.sm.tasks:
            p = probs[name]
            out.append(p.get("probs", p.get("arc_probs", p.get("pair_probs"))))
        return out


def baal_loop(pool: pa.Table, k: int, batch_size: int) -> float | None:
    """(c): BaaL MC dropout over the same padded batches as (a)."""
    try:
        from baal.bayesian.dropout import MCDropoutModule
        from baal.modelwrapper import ModelWrapper, TrainingArgs
    except ImportError:
        return None
    torch.set_num_threads(2)
    sm = bench_model()
    wrapper = ModelWrapper(
        MCDropoutModule(BaalInput(sm)),
        TrainingArgs(use_cuda=False, batch_size=batch_size, replicate_in_memory=True),
    )
    wrapper.model.eval()
    start = time.perf_counter()
    for rows in padded_batches(pool, batch_size):
        b = sm.collator(rows, with_targets=False)
        data = [b.input_ids, b.attention_mask, b.word_index, b.word_mask.long()]
        outs = wrapper.predict_on_batch(data, iterations=k)  # [batch, ..., k] per task
        for out in outs:
            preds = np.moveaxis(out.argmax(dim=-2 if out.dim() > 2 else 1).numpy(), -1, 0)
            if preds.ndim == 2:
                dropout_agreement(preds)
            else:
                dropout_agreement(preds, b.word_mask.numpy())
    return time.perf_counter() - start


def ray_path(pool: pa.Table, cfg: ScoringConfig) -> tuple[float, pa.Table]:
    start = time.perf_counter()
    table = score_pool(pool, "benchmark", cfg, loader=bench_model)
    return time.perf_counter() - start, table


def model_flops(pool: pa.Table, passes: int) -> tuple[float, int]:
    """FLOPs of ``passes`` encoder passes over the pool's real sub-word tokens."""
    sm = bench_model()
    enc = sm.model.sharing
    params = sum(
        p.numel() for n, p in enc.named_parameters() if "embeddings" not in n and "pooler" not in n
    )
    hidden = next(m for m in enc.modules() if hasattr(m, "config")).config
    d, layers = hidden.hidden_size, hidden.num_hidden_layers
    tokens = 0
    attention = 0.0
    for rows in padded_batches(pool, 256):
        lens = sm.collator(rows, with_targets=False).attention_mask.sum(1).double()
        tokens += int(lens.sum())
        attention += float((4 * d * lens**2).sum()) * layers  # QK^T and AV
    return passes * (2 * params * tokens + attention), tokens


#: Op-name fragments -> family, for the profile summary (first match wins).
OP_FAMILIES = (
    ("matmul", ("addmm", "mm", "bmm", "matmul", "linear", "baddbmm")),
    ("attention", ("scaled_dot_product", "_softmax", "softmax")),
    ("dropout (mask RNG + multiply)", ("dropout", "bernoulli", "native_dropout", "uniform")),
    ("layer norm", ("layer_norm",)),
    ("gelu / activations", ("gelu", "tanh", "sigmoid")),
    (
        "copies / indexing / layout",
        (
            "copy_",
            "index",
            "gather",
            "cat",
            "repeat",
            "contiguous",
            "clone",
            "to",
            "embedding",
            "masked_fill",
            "where",
        ),
    ),
)


def profile_scorer(pool: pa.Table, k: int, threads: int) -> None:
    """Where one actor's time goes: torch.profiler over our scorer, grouped by op family."""
    from torch.profiler import ProfilerActivity, profile

    from mtal_ray.scoring.mc_dropout import MCDropoutScorer

    scorer = MCDropoutScorer("benchmark", k=k, threads=threads, loader=lambda _: bench_model())
    batch = pool.append_column(
        "n_tokens", pa.array([len(t) for t in pool.column("tokens").to_pylist()], pa.int32())
    )
    scorer(batch.slice(0, 16))  # warm-up
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        scorer(batch)
    wall = time.perf_counter() - start
    totals: dict[str, float] = {}
    for event in prof.key_averages():
        name = event.key.lower()
        family = next(
            (fam for fam, keys in OP_FAMILIES if any(key in name for key in keys)), "other ops"
        )
        totals[family] = totals.get(family, 0.0) + event.self_cpu_time_total / 1e6
    ops = sum(totals.values())
    print(f"profile: {pool.num_rows} sentences, k={k}, {threads} thread(s), {wall:.1f} s wall")
    for family, seconds in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"  {family:<32} {seconds:7.2f} s  {100 * seconds / ops:5.1f} % of op time")
    print(f"  {'python / numpy outside torch ops':<32} {max(wall - ops, 0):7.2f} s")
    print("top ops by self time:")
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    for event in events[:12]:
        print(f"  {event.key:<40} {event.self_cpu_time_total / 1e6:7.2f} s  x{event.count}")


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks with ties averaged."""
    order = np.argsort(x, kind="mergesort")
    r = np.empty(len(x))
    r[order] = np.arange(len(x))
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    return (np.bincount(inverse, weights=r) / counts)[inverse]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = _ranks(a), _ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def fine_tune(sm: MultiTaskScoringModel, rows: pa.Table, steps: int, seed: int = 0) -> float:
    """A short plain fine-tuning (AdamW, batch 16) so that the heads mean something."""
    model, collator = sm.model, sm.collator
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
    model.train()
    start = time.perf_counter()
    for _ in range(steps):
        batch = collator(rows.take(rng.choice(rows.num_rows, size=16, replace=False)))
        losses = model(batch)
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
    model.eval()
    return time.perf_counter() - start


def _score(scorer: Any, pool: pa.Table, batch_size: int = 64) -> tuple[float, pa.Table]:
    scorer(_with_lengths(pool.slice(0, 16)))  # warm-up (and the one-time split check)
    start = time.perf_counter()
    parts = [scorer(_with_lengths(pool.slice(i, batch_size))) for i in range(0, len(pool), 64)]
    seconds = time.perf_counter() - start
    table = pa.concat_tables(parts)
    return seconds, table.take(np.argsort(table.column("id").to_pylist()))


def _with_lengths(rows: pa.Table) -> pa.Table:
    lengths = pa.array([len(t) for t in rows.column("tokens").to_pylist()], pa.int32())
    return rows.append_column("n_tokens", lengths)


def _picked(table: pa.Table, tasks: list[str], n: int) -> set[str]:
    """The MT-AVG selection of ``n`` sentences on the DA columns."""
    from mtal_ray.selection import make_selector

    cols = {"id": table["id"], "n_tokens": table["n_tokens"]}
    cols.update({f"{t}.ec": table[f"{t}.da"] for t in tasks})
    return set(make_selector("mt-avg").select(pa.table(cols), n=n).ids)


def partial_mc(args: argparse.Namespace) -> None:
    """Partial against full MC dropout on several corpora (see the module docstring)."""
    import copy

    from mtal_ray.scoring.mc_dropout import MCDropoutScorer

    torch.set_num_threads(2)
    print(
        f"partial MC dropout: top {args.mc_layers} encoder layers stochastic vs all; "
        f"k={args.k}, {args.train_steps} fine-tuning steps, pool = last {args.limit} sentences"
    )
    results = []
    for name in args.corpora.split(","):
        corpus = load_corpus(os.path.join(args.shared, name))
        split = corpus.split(args.split)
        pool = split.slice(split.num_rows - args.limit).select(["id", "tokens"])
        train = split.slice(0, split.num_rows - args.limit)
        torch.manual_seed(0)
        tasks = build_tasks(corpus.tasks, build_vocabs(split, corpus.tasks))
        model, collator = build_model(tasks, ModelConfig())
        sm = MultiTaskScoringModel(model, collator)
        tuned = fine_tune(sm, train, args.train_steps)
        partial_sm = copy.deepcopy(sm)
        full = MCDropoutScorer("full", k=args.k, threads=2, loader=lambda _c, m=sm: m)
        part = MCDropoutScorer(
            "partial",
            k=args.k,
            threads=2,
            mc_layers=args.mc_layers,
            loader=lambda _c, m=partial_sm: m,
        )
        # the yardstick: full MC against itself with other dropout masks (seed 1)
        reseeded = MCDropoutScorer("full", k=args.k, threads=2, seed=1, loader=lambda _c, m=sm: m)
        t_full, a = _score(full, pool)
        t_part, b = _score(part, pool)
        _, c = _score(reseeded, pool)
        ec_diff = max(
            float(np.abs(a[f"{t}.ec"].to_numpy() - b[f"{t}.ec"].to_numpy()).max())
            for t in corpus.tasks
        )
        rho = {t: spearman(a[f"{t}.da"].to_numpy(), b[f"{t}.da"].to_numpy()) for t in corpus.tasks}
        n = max(1, pool.num_rows // 10)

        rho_seed = {
            t: spearman(a[f"{t}.da"].to_numpy(), c[f"{t}.da"].to_numpy()) for t in corpus.tasks
        }
        chosen = _picked(a, corpus.tasks, n)
        overlap = len(chosen & _picked(b, corpus.tasks, n)) / n
        overlap_seed = len(chosen & _picked(c, corpus.tasks, n)) / n
        n_pool = pool.num_rows
        print(
            f"{name}: fine-tuned {tuned:.0f}s; full {n_pool / t_full:.1f} sent/s, partial "
            f"{n_pool / t_part:.1f} sent/s (x{t_full / t_part:.2f}); max |EC diff| {ec_diff:.1e}; "
            f"DA Spearman {', '.join(f'{t} {r:.3f}' for t, r in rho.items())}; "
            f"MT-AVG/DA top-{n} overlap {overlap:.0%}; full MC reseeded: DA Spearman "
            f"{', '.join(f'{t} {r:.3f}' for t, r in rho_seed.items())}, overlap {overlap_seed:.0%}"
        )
        results.append(
            (name, n_pool / t_full, n_pool / t_part, rho, overlap, rho_seed, overlap_seed)
        )
    print()
    print(
        f"| corpus | full MC sent/s | top-{args.mc_layers} sent/s | speed-up | DA Spearman: "
        f"top-{args.mc_layers} vs full (full vs full, other seed) | MT-AVG/DA overlap: "
        f"top-{args.mc_layers} vs full (full vs full, other seed) |"
    )
    print("|---|---|---|---|---|---|")
    for name, f, p, rho, overlap, rho_seed, overlap_seed in results:
        rhos = ", ".join(f"{t} {r:.2f} ({rho_seed[t]:.2f})" for t, r in rho.items())
        print(
            f"| {name} | {f:.1f} | {p:.1f} | {p / f:.2f}x | {rhos} | "
            f"{overlap:.0%} ({overlap_seed:.0%}) |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="/work/shared/data/atis")
    parser.add_argument("--split", default="train")
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32, help="(a), (c) batch size")
    parser.add_argument("--checkpoint", default="", help="default: fresh heads, same speed")
    parser.add_argument("--skip", default="", help="comma list of routes to skip: a,b1,b1t2,b2,c")
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="only profile one actor (1 thread) on the first N pool sentences, by op family",
    )
    parser.add_argument(
        "--mc-layers",
        type=int,
        default=0,
        metavar="N",
        help="measure partial MC dropout (top N layers stochastic) against full MC instead",
    )
    parser.add_argument("--corpora", default="atis,ewt_dp_ner,conll04", help="with --mc-layers")
    parser.add_argument("--shared", default=os.path.join(REPO, "..", "shared", "data"))
    parser.add_argument("--train-steps", type=int, default=200, help="with --mc-layers")
    args = parser.parse_args()
    if args.mc_layers:
        partial_mc(args)
        return
    skip = set(filter(None, args.skip.split(",")))

    corpus = load_corpus(args.data)
    split = corpus.split(args.split)
    pool = split.slice(0, args.limit).select(["id", "tokens"])
    SETTINGS.update(
        checkpoint=args.checkpoint,
        tasks=corpus.tasks,
        vocabs=build_vocabs(split, corpus.tasks),
    )
    if args.profile:
        profile_scorer(pool.slice(0, args.profile), args.k, threads=1)
        return
    n = pool.num_rows
    words = sum(len(t) for t in pool.column("tokens").to_pylist())
    print(
        f"pool: {n} sentences ({words / n:.1f} words avg) from {args.data} [{args.split}], "
        f"tasks {corpus.tasks}, k={args.k}"
    )

    gflops = matmul_gflops()
    print(f"fp32 matmul (2 threads): {gflops:.1f} GFLOP/s")
    rows: list[tuple[str, float | None, float | None]] = []
    ec_a = None
    if "a" not in skip:
        t, ec_a = plain_loop(pool, args.k, args.batch_size)
        rows.append(("(a) plain PyTorch loop, padded batches", t, None))
        print(f"(a) {n / t:.1f} sentences/s")

    import logging

    import ray
    import ray.data

    ray.init(
        num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING
    )
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    small = pool.slice(0, 16)
    flops, tokens = model_flops(pool, args.k + 1)
    best_steady = None
    try:
        steady_by_route: dict[str, float] = {}
        for name, cfg in (
            ("b1", ScoringConfig(k=args.k, concurrency=1, cpus_per_actor=1)),
            ("b1t2", ScoringConfig(k=args.k, concurrency=1, cpus_per_actor=2)),
            ("b2", ScoringConfig(k=args.k, concurrency=2, cpus_per_actor=1)),
        ):
            if name in skip:
                continue
            overhead, _ = ray_path(small, cfg)
            t, table = ray_path(pool, cfg)
            steady = max(t - overhead, 1e-9)
            label = f"(b) Ray Data, {cfg.concurrency} actor(s) x {cfg.threads()} thread(s)"
            rows.append((label, t, steady))
            best_steady = steady if best_steady is None else min(best_steady, steady)
            steady_by_route[name] = steady
            print(f"{label}: {n / t:.1f} sentences/s ({n / steady:.1f} steady)")
            if ec_a is not None:
                diff = max(
                    float(np.abs(table.column(f"{task}.ec").to_numpy() - ec_a[task]).max())
                    for task in corpus.tasks
                )
                print(f"    max |EC(b) - EC(a)| = {diff:.2e}")
    finally:
        ray.shutdown()
    if "b1" in steady_by_route and "b2" in steady_by_route:
        eff = steady_by_route["b1"] / (2 * steady_by_route["b2"])
        print(f"1 -> 2 actors (1 thread each) scaling efficiency: {100 * eff:.0f} %")

    if "c" not in skip:
        t_c = baal_loop(pool, args.k, args.batch_size)
        if t_c is None:
            print("(c) skipped: baal is not installed (pip install --no-deps baal ...)")
        else:
            rows.append(("(c) BaaL MCDropoutModule + ModelWrapper (k passes only)", t_c, None))
            print(f"(c) {n / t_c:.1f} sentences/s")

    print()
    print(f"{'route':<58} {'s':>8} {'sent/s':>8} {'steady':>8}")
    for label, t, steady in rows:
        s_steady = f"{n / steady:8.1f}" if steady else f"{'':>8}"
        print(f"{label:<58} {t:8.1f} {n / t:8.1f} {s_steady}")
    gflops = max(gflops, matmul_gflops())  # the machine may be shared: take the better one
    print(f"fp32 matmul (2 threads), best of start and end: {gflops:.1f} GFLOP/s")
    if best_steady is not None:
        achieved = flops / best_steady / 1e9
        print(
            f"(d) model FLOP/s of our best route: {achieved:.1f} GFLOP/s on {tokens} real "
            f"sub-word tokens x {args.k + 1} passes = {100 * achieved / gflops:.0f} % of "
            f"measured matmul ({gflops:.1f} GFLOP/s)"
        )


if __name__ == "__main__":
    main()
