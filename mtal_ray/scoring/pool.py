"""Score a whole unlabeled pool with Ray Data tasks or actors.

The pool is sorted by length and cut into buckets in the driver (pure Arrow, no Ray task
stage: on a 2-core machine an upstream task stage next to the scorers can starve),
consecutive buckets are joined into Ray Data blocks of up to ~4096 rows (about 8 per scorer
at least), and ``map_batches`` hands each whole block to a
:class:`~mtal_ray.scoring.mc_dropout.MCDropoutScorer`, which scores it bucket by bucket (on
GPUs, where Ray Data needs a batch size, a batch holds at most the largest block's rows).

``scoring.compute`` chooses how the scorers run. With ``tasks`` (the default on CPU) each
block is a Ray task; a worker process keeps the scorer of each running call in
:data:`_WARM` (the model is loaded once per process and call) and keeps its imports from one
call to the next, so a later round's scoring needs no process start and no import (Ray
keeps idle workers up to its soft limit, which :mod:`mtal_ray.ray_session` raises for a local
Ray). With ``actors`` a pool of actors lives as long as the call. Either way a block whose
process dies is run again (Ray retries the task, or restarts the actor,
``max_restarts=-1``, and retries its batch), a failed block's partial output is never
committed, and the result holds every id once; :func:`score_pool` checks that before
returning.
"""

from __future__ import annotations

import gc
import os
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from mtal_ray.errors import EmptyPoolError, MtalError, ScoringError, user_error
from mtal_ray.ray_session import ensure_ray
from mtal_ray.scoring.buckets import bucket_blocks
from mtal_ray.scoring.config import ScoringConfig
from mtal_ray.scoring.mc_dropout import MCDropoutScorer, ModelLoader
from mtal_ray.scoring.table import check_complete, write_confidence_table

__all__ = ["block_count", "score_pool", "score_pool_to_file", "scoring_progress_text"]


def _pool_columns(pool: pa.Table) -> pa.Table:
    missing = [c for c in ("id", "tokens") if c not in pool.column_names]
    if missing:
        raise ScoringError(f"pool table lacks column(s) {', '.join(missing)}")
    if pool.num_rows == 0:
        raise EmptyPoolError("the unlabeled pool is empty: nothing to score")
    ids = pool.column("id").cast(pa.string())
    if pc.count_distinct(ids).as_py() != pool.num_rows:
        raise ScoringError("pool ids are not unique")
    return pa.table({"id": ids, "tokens": pool.column("tokens")})


class _InitErrorsReported:
    """Mixin for a scorer actor class: a user error in ``__init__`` is raised by ``__call__``.

    Ray ships an exception raised by a task back as an object (``RayTaskError.cause``), but
    an actor whose ``__init__`` fails dies and leaves only its traceback text. So the actor
    keeps a user error from its construction and raises it on its first batch instead.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._init_error: MtalError | None = None
        from mtal_ray.logs import setup_logging

        setup_logging("scorer")
        try:
            super().__init__(*args, **kwargs)
        except MtalError as err:
            self._init_error = err

    def __call__(self, batch: pa.Table) -> pa.Table:
        if self._init_error is not None:
            raise self._init_error
        return super().__call__(batch)  # type: ignore[misc]


def _actor_class(scorer_cls: type[MCDropoutScorer]) -> type[MCDropoutScorer]:
    """``scorer_cls`` with :class:`_InitErrorsReported` (same name in Ray Data's progress)."""
    return type(scorer_cls.__name__, (_InitErrorsReported, scorer_cls), {})


#: The scorers of the scoring calls that ran blocks in this worker process, by call token,
#: most recently used last, with the time of their last block. Concurrent calls (the trials
#: of a sweep) share the workers: each keeps its scorer instead of reloading its model
#: whenever the other ran a block in between.
_WARM: OrderedDict[str, tuple[MCDropoutScorer, float]] = OrderedDict()
#: Most scorers (models) a worker process keeps ...
MAX_WARM_SCORERS = 4
#: ... and for how long after a call's last block here (a call's blocks come seconds apart;
#: the next round brings a new model and a new call).
WARM_IDLE_S = 120.0


def _warm_scorer(
    call: str, build: Callable[[], MCDropoutScorer], now: float | None = None
) -> MCDropoutScorer:
    """This process's scorer for ``call``, built by ``build()`` on the call's first block
    here; scorers of calls idle for ``WARM_IDLE_S`` or beyond the ``MAX_WARM_SCORERS`` most
    recent go first."""
    now = time.monotonic() if now is None else now
    entry = _WARM.pop(call, None)
    for token in [t for t, (_, last) in _WARM.items() if now - last > WARM_IDLE_S]:
        del _WARM[token]
    while len(_WARM) >= MAX_WARM_SCORERS:
        _WARM.popitem(last=False)
    scorer = build() if entry is None else entry[0]
    _WARM[call] = (scorer, now)
    return scorer


def _score_block(
    batch: pa.Table,
    *,
    call: str,
    scorer_cls: type[MCDropoutScorer],
    constructor: dict[str, Any],
) -> pa.Table:
    """Ray Data task function: score ``batch`` with this process's scorer for ``call``
    (built, and its model loaded, on the call's first block in this process)."""

    def build() -> MCDropoutScorer:
        from mtal_ray.logs import setup_logging

        setup_logging("scorer")
        return scorer_cls(**constructor)

    return _warm_scorer(call, build)(batch)


def block_count(rows: int, config: ScoringConfig) -> int:
    """How many Ray Data blocks a pool of ``rows`` is cut into: about 8 per scorer (load
    balance), at most ~``scoring.block_rows`` rows each (Ray Data's cost per block stays
    small, a retried block cheap); :func:`~mtal_ray.scoring.buckets.bucket_blocks` keeps
    whole buckets, so a small pool may get fewer."""
    return max(8 * config.concurrency, -(-rows // config.block_rows))


def map_batches_options(config: ScoringConfig, blocks: list[pa.Table]) -> dict[str, Any]:
    """The ``map_batches`` options shared by the task and the actor scorers.

    A batch is a whole block (``batch_size=None``): the scorer splits it into its length
    buckets. Ray Data refuses ``None`` when GPUs are requested, so on GPUs the batch size
    is the largest block's row count; a batch then holds at most about one block, and a
    length bucket cut at a batch's edge is scored as two smaller batches.
    """
    gpus = config.gpus_per_actor or None
    return {
        "batch_size": max((b.num_rows for b in blocks), default=1) if gpus else None,
        "batch_format": "pyarrow",
        "num_cpus": config.cpus_per_actor,
        "num_gpus": gpus,
        "zero_copy_batch": True,
    }


def scoring_progress_text(done: int, total: int, seconds: float) -> str:
    """``scoring: 320/1000 sentences (25.1/s)`` for a progress callback."""
    return f"scoring: {done}/{total} sentences ({done / max(seconds, 1e-9):.1f}/s)"


def score_pool(
    pool: pa.Table,
    checkpoint: str | os.PathLike[str],
    config: ScoringConfig | None = None,
    *,
    loader: ModelLoader | None = None,
    scorer_cls: type[MCDropoutScorer] = MCDropoutScorer,
    experiment: str | None = None,
    progress: Callable[[int, int, float], None] | None = None,
    phases: dict[str, float] | None = None,
) -> pa.Table:
    """Confidence table of every sentence of ``pool``.

    Parameters
    ----------
    pool : pyarrow.Table
        Rows to score; needs ``id`` and ``tokens`` (other columns are ignored).
    checkpoint : path-like
        The trained model, loaded once per actor (``actors``) or per worker process
        (``tasks``).
    config : ScoringConfig, optional
        ``k``, ``ec_only``, ``concurrency``, ``batch_size``, resources... (defaults when
        omitted).
    loader : callable, optional
        ``loader(checkpoint) -> ScoringModel`` run inside each scorer.
    scorer_cls : type, optional
        The scorer class (a subclass of :class:`MCDropoutScorer`).
    progress : callable, optional
        ``progress(rows_done, rows_total, seconds)``, called at most every 10 s and at
        the end while scored rows stream in.
    phases : dict, optional
        Filled with where the time went, in seconds: ``prepare`` (checks and length
        buckets in the driver), ``first_block`` (until the first scored block arrives:
        process start and imports where a scorer needs them, model load and the first
        batch) and ``stream`` (the rest, with checking and ordering the result).

    Returns
    -------
    pyarrow.Table
        The confidence table (schema in :mod:`mtal_ray.scoring.table`), rows in pool order.

    Notes
    -----
    Starts a local Ray instance if none is running.
    """
    import ray
    import ray.data

    cfg = config or ScoringConfig()
    timing = phases if phases is not None else {}
    called = time.perf_counter()
    table = _pool_columns(pool)
    if loader is None:  # fail in the driver, not in every actor
        from mtal_ray.training.checkpoint import read_info

        if not Path(checkpoint).exists():
            raise ScoringError(f"{checkpoint}: no such checkpoint")
        known = read_info(checkpoint).tasks
        unknown = [t for t in cfg.tasks or () if t not in known]
        if unknown:
            raise ScoringError(
                f"{checkpoint}: the model has no task {', '.join(unknown)} "
                f"(it predicts {', '.join(known)})"
            )
    ensure_ray(gpus=cfg.gpu_needs())  # GPUs a local Ray cannot give: one line, no wait
    blocks = bucket_blocks(table, cfg.batch_size, cfg.max_tokens, block_count(table.num_rows, cfg))
    constructor: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "k": cfg.k,
        "ec_only": cfg.ec_only,
        "tasks": cfg.tasks,
        "temperatures": cfg.temperatures,
        "threads": cfg.threads(),
        "seed": cfg.seed,
        "max_tokens": cfg.max_tokens,
        "mc_layers": cfg.partial_layers(),
        "device": cfg.device(),
        "precision": cfg.precision,
        "loader": loader,
        "experiment": experiment,
    }
    common = map_batches_options(cfg, blocks)
    source = ray.data.from_arrow(blocks)
    if cfg.compute_strategy() == "tasks":
        dataset = source.map_batches(
            _score_block,
            fn_kwargs={
                "call": uuid.uuid4().hex,
                "scorer_cls": scorer_cls,
                "constructor": constructor,
            },
            compute=ray.data.TaskPoolStrategy(size=cfg.concurrency),
            **common,
        )
    else:
        dataset = source.map_batches(
            _actor_class(scorer_cls),
            fn_constructor_kwargs=constructor,
            compute=ray.data.ActorPoolStrategy(size=cfg.concurrency),
            **common,
        )
    # a scorer's exception comes back as itself, not as a UserCodeException whose
    # ``__cause__`` (the user's error) is lost on the way back from the actor
    dataset.context.raise_original_map_exception = True
    parts: list[pa.Table] = []
    done, started, last_report = 0, time.perf_counter(), float("-inf")  # report the first
    timing["prepare"] = started - called
    failure: str | None = None
    try:  # streamed: scored blocks arrive as scorers finish them
        for part in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            parts.append(part)
            done += part.num_rows
            now = time.perf_counter()
            if len(parts) == 1:
                timing["first_block"] = now - started
            if progress is not None and (now - last_report >= 10.0 or done == table.num_rows):
                progress(done, table.num_rows, now - started)
                last_report = now
    except Exception as err:  # Ray wraps errors raised in scorers; surface the user's one
        cause = user_error(err)
        if cause is None:
            raise
        failure = str(cause)
    if failure is not None:
        # A failed call's executor sits in a reference cycle with Ray's error and its
        # traceback; collected only by the garbage collector, its actors hold their CPUs
        # until then (a later scoring or training in this process could wait forever). So
        # the error is raised without Ray's (it carries the scorer's message) after
        # collecting what the failed call left.
        del dataset
        gc.collect()
        raise ScoringError(failure)
    if not parts:
        raise ScoringError("scoring returned no rows (is the pool empty?)")
    result = pa.concat_tables([p for p in parts if p.num_rows] or parts)
    check_complete(result, table.column("id"))
    order = pc.index_in(table.column("id"), value_set=result.column("id"))
    result = result.take(order)
    timing["stream"] = time.perf_counter() - started - timing["first_block"]  # + assembly
    return result


def score_pool_to_file(
    pool: pa.Table,
    checkpoint: str | os.PathLike[str],
    output: str | os.PathLike[str],
    config: ScoringConfig | None = None,
    *,
    loader: ModelLoader | None = None,
    experiment: str | None = None,
    progress: Callable[[int, int, float], None] | None = None,
    phases: dict[str, float] | None = None,
) -> pa.Table:
    """:func:`score_pool`, then write the table atomically to ``output`` (Parquet).

    The scoring settings go into the file's schema metadata. Nothing is written if
    scoring fails.
    """
    cfg = config or ScoringConfig()
    timing = phases if phases is not None else {}
    result = score_pool(
        pool,
        checkpoint,
        cfg,
        loader=loader,
        experiment=experiment,
        progress=progress,
        phases=timing,
    )
    writing = time.perf_counter()
    tasks = [c.removesuffix(".ec") for c in result.column_names if c.endswith(".ec")]
    write_confidence_table(
        result,
        Path(output),
        {
            "k": None if cfg.ec_only else cfg.k,
            "ec_only": cfg.ec_only,
            "checkpoint": str(checkpoint),
            "tasks": tasks,
            "seed": cfg.seed,
            "temperatures": cfg.temperatures or None,
        },
    )
    timing["write"] = time.perf_counter() - writing
    return result
