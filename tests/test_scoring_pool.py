"""Pool scoring through Ray Data tasks and actors on a real (tiny) MiniLM checkpoint.

Every pool id must come back exactly once, with the same scores as scoring the same
length buckets in-process: with two scorers and uneven batches, and when one scorer's
process dies in the middle of the pool (Ray retries its batch), under either
``scoring.compute``. With tasks, a later scoring runs in the processes of the last one
(imports kept) even after actors took the CPUs in between (as a round's training does).
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
from mtal_ray.scoring.buckets import bucket_blocks, bucket_table
from mtal_ray.scoring.config import ScoringConfig
from mtal_ray.scoring.mc_dropout import MCDropoutScorer
from mtal_ray.scoring.pool import map_batches_options, score_pool, score_pool_to_file
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


class ProcessReportingScorer(MCDropoutScorer):
    """Notes, per construction, its process and whether that process had built a scorer
    before, its imports done (file ``<pid>-<ns>``: ``warm`` or ``cold``)."""

    def __init__(self, checkpoint: str, **kwargs: Any) -> None:
        folder = Path(checkpoint).parent / "constructions"
        warm = getattr(sys, "_mtal_scored_before", False)  # this process built a scorer
        sys._mtal_scored_before = True  # type: ignore[attr-defined]
        folder.mkdir(exist_ok=True)
        (folder / f"{os.getpid()}-{time.monotonic_ns()}").write_text("warm" if warm else "cold")
        super().__init__(checkpoint, **kwargs)


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


@pytest.mark.parametrize("compute", ["tasks", "actors"])
def test_two_scorers_uneven_batches_every_id_once(  # type: ignore[no-untyped-def]
    ray_cluster, checkpoint: Path, pool: pa.Table, in_process: pa.Table, tmp_path, compute
) -> None:
    target = tmp_path / "conf.parquet"
    reports: list[tuple[int, int]] = []
    phases: dict[str, float] = {}
    started = time.perf_counter()
    out = score_pool_to_file(
        pool,
        checkpoint,
        target,
        ScoringConfig(**CONFIG, compute=compute),
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


@pytest.mark.parametrize("compute", ["tasks", "actors"])
def test_a_killed_scorer_process_loses_and_duplicates_no_row(  # type: ignore[no-untyped-def]
    ray_cluster, checkpoint: Path, pool: pa.Table, in_process: pa.Table, compute
) -> None:
    (checkpoint / "died").unlink(missing_ok=True)
    cfg = ScoringConfig(**CONFIG, compute=compute)
    out = score_pool(pool, checkpoint, cfg, scorer_cls=DyingScorer)
    assert (checkpoint / "died").exists(), "the fault was not injected"
    assert out.column("id").to_pylist() == pool.column("id").to_pylist()
    # dropout masks are seeded per batch, so the retried batch scores exactly as before
    for col in ("ner.ec", "ner.da", "id.ec", "id.da"):
        np.testing.assert_allclose(out[col].to_numpy(), in_process[col].to_numpy(), atol=1e-6)


@pytest.mark.parametrize("compute", ["tasks", "actors"])
def test_loader_error_in_a_scorer_surfaces_as_scoring_error(
    ray_cluster, pool: pa.Table, compute
) -> None:  # type: ignore[no-untyped-def]
    cfg = ScoringConfig(ec_only=True, compute=compute)
    with pytest.raises(ScoringError, match="not a checkpoint") as raised:
        score_pool(pool, "nowhere", cfg, loader=broken_loader)
    # the failed call's scorers are gone although its error is still held (by pytest here)
    assert raised.value is not None
    deadline = time.monotonic() + 20
    total = ray.cluster_resources()["CPU"]
    while ray.available_resources().get("CPU", 0) < total and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ray.available_resources().get("CPU", 0) == total


def test_task_scorers_keep_their_processes_from_one_scoring_to_the_next(  # type: ignore[no-untyped-def]
    ray_cluster, checkpoint: Path, pool: pa.Table, in_process: pa.Table, tmp_path
) -> None:
    import shutil

    ckpt = tmp_path / "model"  # ProcessReportingScorer writes beside the checkpoint
    shutil.copytree(checkpoint, ckpt)
    folder = tmp_path / "constructions"
    cfg = ScoringConfig(**CONFIG, compute="tasks")

    def constructions() -> dict[int, list[str]]:
        found: dict[int, list[str]] = {}
        for path in sorted(folder.iterdir(), key=lambda p: int(p.name.split("-")[1])):
            found.setdefault(int(path.name.split("-")[0]), []).append(path.read_text())
        return found

    first = score_pool(pool, ckpt, cfg, scorer_cls=ProcessReportingScorer)
    after_first = constructions()
    # one scorer (model load) per process and call
    assert all(len(kinds) == 1 for kinds in after_first.values()), after_first

    @ray.remote(num_cpus=1)
    class Busy:  # what a round's training does to the node: actors on every CPU
        def hold(self, seconds: float) -> int:
            time.sleep(seconds)
            return os.getpid()

    holders = [Busy.remote() for _ in range(2)]
    ray.get([h.hold.remote(15.0) for h in holders])
    for holder in holders:
        ray.kill(holder)
    time.sleep(2.0)  # Ray's idle-worker killing runs about every second

    second = score_pool(pool, ckpt, cfg, scorer_cls=ProcessReportingScorer)
    after_second = constructions()
    new = {pid: kinds[len(after_first.get(pid, [])) :] for pid, kinds in after_second.items()}
    new = {pid: kinds for pid, kinds in new.items() if kinds}
    assert all(len(kinds) == 1 for kinds in new.values()), after_second
    reused = [pid for pid in new if pid in after_first]
    assert reused, f"no process of the first scoring scored again: {after_first} -> {new}"
    assert all(new[pid] == ["warm"] for pid in reused)  # no import the second time
    for out in (first, second):
        assert out.column("id").to_pylist() == pool.column("id").to_pylist()
        for col in ("ner.ec", "ner.da", "id.ec", "id.da"):
            np.testing.assert_allclose(out[col].to_numpy(), in_process[col].to_numpy(), atol=1e-6)


def test_bad_checkpoint_fails_in_the_driver(tmp_path, pool: pa.Table) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ScoringError, match="no such checkpoint"):
        score_pool(pool, tmp_path / "missing", ScoringConfig())
    with pytest.raises(Exception, match="not a checkpoint"):
        score_pool(pool, tmp_path, ScoringConfig())


def test_gpu_scorers_get_a_batch_size_that_ray_data_accepts(ray_cluster, pool: pa.Table) -> None:  # type: ignore[no-untyped-def]
    # Ray Data refuses map_batches(batch_size=None) with num_gpus > 0 (found on an H200):
    # on GPUs a batch is at most the largest block; on CPUs a batch is a whole block.
    blocks = bucket_blocks(pool, 5, None, 3)
    assert len(blocks) > 1
    cpu = map_batches_options(ScoringConfig(**CONFIG), blocks)
    gpu = map_batches_options(ScoringConfig(**{**CONFIG, "gpus_per_actor": 1}), blocks)
    assert cpu["batch_size"] is None and cpu["num_gpus"] is None
    assert gpu["batch_size"] == max(b.num_rows for b in blocks) and gpu["num_gpus"] == 1
    source = ray.data.from_arrow(blocks)
    with pytest.raises(ValueError, match="batch_size"):
        source.map_batches(lambda b: b, **{**gpu, "batch_size": None})
    source.map_batches(lambda b: b, **gpu)  # planned lazily; no GPU needed to accept it
