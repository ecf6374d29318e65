"""The Ray Data scorer: MC-dropout confidences for batches of pool sentences.

:class:`MCDropoutScorer` is a callable class for ``Dataset.map_batches``: Ray Data builds
one per actor, or :mod:`mtal_ray.scoring.pool` one per task worker process and call (the
checkpoint is loaded once either way), and calls it on each batch. A batch is a
``pyarrow.Table`` with ``id``, ``tokens`` and ``n_tokens``; the result is the matching
rows of the confidence table (:mod:`mtal_ray.scoring.table`). ``id`` is carried through
because Ray Data does not keep row order.

Per batch, one deterministic pass (dropout off) gives EC and the entity counts; only when
DA is wanted, ``k`` stochastic passes (dropout on) follow. Those are stacked: the batch is
replicated ``c`` times in one forward (each copy gets its own dropout masks, so this is
exactly ``c`` independent passes) with ``c`` as large as ``max_tokens`` allows, which
turns ``k`` small matrix multiplies into a few large ones. The dropout RNG is seeded from
the config seed and the batch's first id, so a batch scores the same on any actor and
after a retry.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from mtal_ray.errors import ScoringError
from mtal_ray.scoring.buckets import length_buckets, split_buckets
from mtal_ray.scoring.outputs import TaskOutput, score_outputs
from mtal_ray.scoring.protocol import ScoringModel
from mtal_ray.scoring.table import confidence_schema

__all__ = ["MCDropoutScorer", "ModelLoader"]

#: Builds the model from a checkpoint path (default:
#: :func:`mtal_ray.scoring.model_adapter.load_scoring_model`).
ModelLoader = Callable[[str], ScoringModel]


def _default_loader(checkpoint: str, device: str = "cpu") -> ScoringModel:
    from mtal_ray.scoring.model_adapter import load_scoring_model

    return load_scoring_model(checkpoint, device)


class MCDropoutScorer:
    """Callable class for ``map_batches``: loads a model once, scores batches.

    Parameters
    ----------
    checkpoint : str
        Checkpoint directory given to ``loader``.
    k : int
        MC-dropout passes for DA.
    ec_only : bool
        Skip the stochastic passes (no ``<task>.da``).
    tasks : sequence of str, optional
        Tasks to score; default all of the model's.
    temperatures : mapping, optional
        Post-hoc temperature per task, applied before EC.
    threads : int
        torch intra-op threads of this actor.
    seed : int
        Base seed of the dropout masks.
    max_tokens : int
        Most padded words per forward pass.
    mc_layers : int, optional
        Partial MC dropout: only the encoder's top ``mc_layers`` layers and the heads run
        the stochastic passes (the model's ``partial``); ``None``: all of it.
    device : str
        ``cpu`` or ``cuda`` (the actor's GPU): where the default loader puts the model.
    precision : str
        ``fp32`` or ``bf16`` (the forward passes under bfloat16 autocast).
    loader : callable, optional
        ``loader(checkpoint) -> ScoringModel`` (it places the model itself).
    experiment : str, optional
        Label of the ``mtal_scored_rows`` / ``mtal_scoring_rows_per_second`` metrics this
        actor records per batch; no metrics when ``None``.
    """

    def __init__(
        self,
        checkpoint: str,
        *,
        k: int = 10,
        ec_only: bool = False,
        tasks: Sequence[str] | None = None,
        temperatures: Mapping[str, float] | None = None,
        threads: int = 1,
        seed: int = 0,
        max_tokens: int = 8192,
        mc_layers: int | None = None,
        device: str = "cpu",
        precision: str = "fp32",
        loader: ModelLoader | None = None,
        experiment: str | None = None,
    ) -> None:
        import torch

        from mtal_ray.prometheus import ALMetrics

        torch.set_num_threads(threads)
        if device == "cuda" and not torch.cuda.is_available():
            raise ScoringError(
                "scoring.gpus_per_actor > 0 but this scoring actor sees no CUDA device "
                "(torch.cuda.is_available() is false): install a CUDA build of torch on the "
                "GPU nodes, or set scoring.gpus_per_actor: 0"
            )
        if precision not in ("fp32", "bf16"):
            raise ScoringError(f"scoring.precision: {precision!r} is not fp32 or bf16")
        self.device_type = "cuda" if device == "cuda" else "cpu"
        self.precision = precision
        if loader is None:
            self.model = _default_loader(checkpoint, device)
        else:
            self.model = loader(checkpoint)
        if mc_layers is not None and not ec_only:
            partial = getattr(self.model, "partial", None)
            if partial is None:
                raise ScoringError(
                    f"scoring.mc_layers: {type(self.model).__name__} has no partial MC "
                    "dropout; use mc_layers: all"
                )
            partial(mc_layers)
        self.tasks = tuple(tasks) if tasks else tuple(self.model.tasks)
        unknown = [t for t in self.tasks if t not in self.model.tasks]
        if unknown:
            raise ScoringError(
                f"{checkpoint}: the model has no task {', '.join(unknown)} "
                f"(it predicts {', '.join(self.model.tasks)})"
            )
        self.k = k
        self.ec_only = ec_only
        self.temperatures = dict(temperatures or {})
        self.seed = seed
        self.max_tokens = max_tokens
        self.schema = confidence_schema(self.tasks, ec_only)
        # Rows scored and throughput for Prometheus (a no-op when Ray is not running).
        self.metrics = ALMetrics(experiment) if experiment else None

    def __call__(self, batch: pa.Table) -> pa.Table:
        """Score one batch (``id``, ``tokens``, ``n_tokens``) into confidence-table rows;
        a block of several length buckets (:func:`~mtal_ray.scoring.buckets.bucket_blocks`)
        is scored bucket by bucket."""
        import time

        started = time.perf_counter()
        parts = [self._score_batch(bucket) for bucket in split_buckets(batch)]
        result = parts[0] if len(parts) == 1 else pa.concat_tables(parts)
        if self.metrics is not None:
            self.metrics.record_scored(batch.num_rows, time.perf_counter() - started)
        return result

    def _score_batch(self, batch: pa.Table) -> pa.Table:
        lengths = np.asarray(batch.column("n_tokens").to_numpy(zero_copy_only=False))
        parts = [
            self._score_rows(batch.take(pa.array(rows)), int(lengths[rows].max(initial=1)))
            for rows in length_buckets(lengths, max(1, batch.num_rows), self.max_tokens)
        ]
        return pa.concat_tables(parts)

    def _score_rows(self, rows: pa.Table, width: int) -> pa.Table:
        import torch

        ids = rows.column("id").to_pylist()
        tokens = rows.column("tokens").to_pylist()
        autocast = torch.autocast(
            self.device_type, dtype=torch.bfloat16, enabled=self.precision == "bf16"
        )
        with torch.inference_mode(), autocast:
            det, context = self.model.deterministic(tokens, self.tasks)
            passes: list[Mapping[str, TaskOutput]] | None = None
            if not self.ec_only:
                passes = self._stochastic(tokens, context, ids[0], width)
        columns: dict[str, Any] = {
            "id": np.asarray([str(i) for i in ids], dtype=object),
            "n_tokens": rows.column("n_tokens").to_numpy(),
        }
        columns.update(score_outputs(det, passes, self.temperatures))
        arrays = [pa.array(columns[f.name], f.type) for f in self.schema]
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def _stochastic(
        self, tokens: list[list[str]], context: Any, first_id: object, width: int
    ) -> list[Mapping[str, TaskOutput]]:
        import torch

        torch.manual_seed((self.seed * 1_000_003 + zlib.crc32(str(first_id).encode())) % 2**63)
        per_forward = max(1, min(self.k, self.max_tokens // max(1, len(tokens) * width)))
        passes: list[Mapping[str, TaskOutput]] = []
        while len(passes) < self.k:
            copies = min(per_forward, self.k - len(passes))
            passes.extend(self.model.stochastic(tokens, self.tasks, copies, context))
        return passes
