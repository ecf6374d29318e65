"""Pool scoring through Ray Data actors on a real (tiny) MiniLM checkpoint.

Every pool id must come back exactly once, with the same scores as scoring the same
length buckets in-process: with two actors and uneven batches, and when one actor
process dies in the middle of the pool (Ray restarts it and retries its batch).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import ray
import ray.cloudpickle
import torch

from mtal_ray.data.vocab import LabelVocab
from mtal_ray.errors import ScoringError
from mtal_ray.models import ModelConfig, build_model
from mtal_ray.scoring.buckets import bucket_table
from mtal_ray.scoring.config import ScoringConfig
from mtal_ray.scoring.mc_dropout import MCDropoutScorer
from mtal_ray.scoring.pool import score_pool, score_pool_to_file
from mtal_ray.scoring.table import read_confidence_table
from mtal_ray.tasks.registry import build_tasks
from mtal_ray.training.checkpoint import CheckpointInfo, save_checkpoint

pytestmark = pytest.mark.integration

# Ray workers cannot import this test module by name: ship its classes by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

LABELS = {"ner": ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"], "id": ["greet", "ask", "book"]}
WORDS = [
    "john",
    "lives",
    "in",
    "paris",
    "mary",
    "works",
    "at",
    "google",
    "in",
    "london",
    "book",
    "a",
    "flight",
    "to",
    "berlin",
]
CONFIG = {"k": 3, "concurrency": 2, "batch_size": 5, "cpus_per_actor": 0.5}


class DyingScorer(MCDropoutScorer):
    """Kills its own actor process on its second batch, once per test (marker file)."""

    def __init__(self, checkpoint: str, **kwargs: Any) -> None:
        super().__init__(checkpoint, **kwargs)
        self.calls = 0
        self.marker = Path(checkpoint) / "died"

    def __call__(self, batch: pa.Table) -> pa.Table:
        self.calls += 1
        if self.calls == 2 and not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            os._exit(1)
        return super().__call__(batch)


def broken_loader(checkpoint: str) -> Any:
    raise ScoringError(f"{checkpoint}: not a checkpoint (test)")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model, collator = build_model(build_tasks(["ner", "id"], LABELS), ModelConfig())
    vocabs = {t: LabelVocab(t, tuple(labels)) for t, labels in LABELS.items()}
    info = CheckpointInfo(tasks=["ner", "id"], vocabs=vocabs, model=ModelConfig())
    return save_checkpoint(tmp_path_factory.mktemp("ckpt"), model, collator, info)


@pytest.fixture(scope="module")
def pool() -> pa.Table:
    rng = np.random.default_rng(0)
    tokens = [list(rng.choice(WORDS, size=int(rng.integers(1, 14)))) for _ in range(23)]
    return pa.table({"id": [f"s{i:02d}" for i in range(23)], "tokens": tokens})


@pytest.fixture(scope="module")
def in_process(checkpoint: Path, pool: pa.Table) -> pa.Table:
    """The same length buckets scored by one scorer in this process (no Ray)."""
    cfg = ScoringConfig(**CONFIG)
    scorer = MCDropoutScorer(
        str(checkpoint), k=cfg.k, threads=1, seed=cfg.seed, max_tokens=cfg.max_tokens
    )
    blocks = bucket_table(pool.select(["id", "tokens"]), cfg.batch_size, cfg.max_tokens)
    assert len({b.num_rows for b in blocks}) > 1, "batches should be uneven"
    table = pa.concat_tables([scorer(b) for b in blocks])
    return table.take(pa.compute.index_in(pool.column("id"), value_set=table.column("id")))


@pytest.fixture(scope="module")
def ray_cluster(ray_session):  # type: ignore[no-untyped-def]
    """This process joined to the session's shared 2-CPU Ray (conftest)."""
    return ray_session


def test_two_actors_uneven_batches_every_id_once(  # type: ignore[no-untyped-def]
    ray_cluster, checkpoint: Path, pool: pa.Table, in_process: pa.Table, tmp_path
) -> None:
    target = tmp_path / "conf.parquet"
    reports: list[tuple[int, int]] = []
    phases: dict[str, float] = {}
    started = time.perf_counter()
    out = score_pool_to_file(
        pool,
        checkpoint,
        target,
        ScoringConfig(**CONFIG),
        progress=lambda done, total, _secs: reports.append((done, total)),
        phases=phases,
    )
    wall = time.perf_counter() - started
    # where the time went: the phases in order, adding up to the call
    assert list(phases) == ["prepare", "first_block", "stream", "write"]
    assert min(phases.values()) >= 0 and phases["first_block"] > 0
    assert wall * 0.95 <= sum(phases.values()) <= wall
    assert out.column("id").to_pylist() == pool.column("id").to_pylist()
    # progress: rows counted as they stream in, ending at the whole pool
    assert reports and reports[-1] == (pool.num_rows, pool.num_rows)
    assert [d for d, _ in reports] == sorted(d for d, _ in reports)
    assert read_confidence_table(target).replace_schema_metadata(None).equals(out)
    assert out.column_names == [
        "id",
        "n_tokens",
        "ner.ec",
        "ner.da",
        "ner.n_entities",
        "id.ec",
        "id.da",
    ]
    for col in ("ner.ec", "ner.da", "id.ec", "id.da"):
        np.testing.assert_allclose(out[col].to_numpy(), in_process[col].to_numpy(), atol=1e-6)
    assert out["ner.da"].to_numpy().min() < 1.0  # dropout is on in the k passes


def test_killed_actor_is_restarted_and_no_row_is_lost_or_duplicated(  # type: ignore[no-untyped-def]
    ray_cluster, checkpoint: Path, pool: pa.Table, in_process: pa.Table
) -> None:
    out = score_pool(pool, checkpoint, ScoringConfig(**CONFIG), scorer_cls=DyingScorer)
    assert (checkpoint / "died").exists(), "the fault was not injected"
    assert out.column("id").to_pylist() == pool.column("id").to_pylist()
    # dropout masks are seeded per batch, so the retried batch scores exactly as before
    for col in ("ner.ec", "ner.da", "id.ec", "id.da"):
        np.testing.assert_allclose(out[col].to_numpy(), in_process[col].to_numpy(), atol=1e-6)


def test_loader_error_in_actor_surfaces_as_scoring_error(ray_cluster, pool: pa.Table) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ScoringError, match="not a checkpoint"):
        score_pool(pool, "nowhere", ScoringConfig(ec_only=True), loader=broken_loader)


def test_bad_checkpoint_fails_in_the_driver(tmp_path, pool: pa.Table) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ScoringError, match="no such checkpoint"):
        score_pool(pool, tmp_path / "missing", ScoringConfig())
    with pytest.raises(Exception, match="not a checkpoint"):
        score_pool(pool, tmp_path, ScoringConfig())
