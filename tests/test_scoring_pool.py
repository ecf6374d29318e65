"""Ray Data plumbing of pool scoring with a small real torch model defined here.

Every pool id must come back exactly once: with several actors and uneven batches, and
when an actor process dies in the middle of the pool (Ray restarts it and retries).
"""

from __future__ import annotations

import os
import sys
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import ray.cloudpickle
import torch
from torch import nn

from mtal_ray.data.spans import bio_to_spans
from mtal_ray.scoring.config import ScoringConfig
from mtal_ray.scoring.mc_dropout import MCDropoutScorer
from mtal_ray.scoring.outputs import TaskOutput
from mtal_ray.scoring.pool import score_pool, score_pool_to_file
from mtal_ray.scoring.table import read_confidence_table

pytestmark = pytest.mark.integration

# Ray workers cannot import this test module by name: ship its classes by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

TAGS = ("O", "B-X", "I-X")


class ToyTagger(nn.Module):
    """Hashed word embeddings -> dropout -> a BIO tagger and a 3-way sentence classifier."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(64, 16)
        self.drop = nn.Dropout(0.3)
        self.tagger = nn.Linear(16, len(TAGS))
        self.intent = nn.Linear(16, 3)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.drop(self.embed(ids))
        pooled = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        return self.tagger(h).softmax(-1), self.intent(pooled).softmax(-1)


class ToyModel:
    """The ScoringModel interface over ToyTagger."""

    tasks = ("ner", "id")

    def __init__(self) -> None:
        self.net = ToyTagger()

    def _encode(self, tokens: Sequence[Sequence[str]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(t) for t in tokens)
        ids = torch.zeros(len(tokens), width, dtype=torch.long)
        mask = torch.zeros(len(tokens), width, dtype=torch.bool)
        for row, words in enumerate(tokens):
            ids[row, : len(words)] = torch.tensor([zlib.crc32(w.encode()) % 64 for w in words])
            mask[row, : len(words)] = True
        return ids, mask

    def _outputs(self, tags: torch.Tensor, intent: torch.Tensor, mask: torch.Tensor) -> dict:
        best = tags.argmax(-1)
        n_ent = [
            len(bio_to_spans([TAGS[j] for j in row[: int(m.sum())]]))
            for row, m in zip(best.tolist(), mask, strict=True)
        ]
        return {
            "ner": TaskOutput("token", tags.numpy(), mask.numpy(), np.array(n_ent)),
            "id": TaskOutput("class", intent.numpy()),
        }

    def deterministic(
        self, tokens: Sequence[Sequence[str]], tasks: Sequence[str]
    ) -> tuple[Mapping[str, TaskOutput], Any]:
        self.net.eval()
        ids, mask = self._encode(tokens)
        return self._outputs(*self.net(ids, mask), mask), None

    def stochastic(
        self, tokens: Sequence[Sequence[str]], tasks: Sequence[str], copies: int, context: Any
    ) -> list[Mapping[str, TaskOutput]]:
        self.net.train()
        ids, mask = self._encode(tokens)
        tags, intent = self.net(ids.repeat(copies, 1), mask.repeat(copies, 1))
        n = len(tokens)
        return [
            self._outputs(tags[c * n : (c + 1) * n], intent[c * n : (c + 1) * n], mask)
            for c in range(copies)
        ]


def toy_loader(checkpoint: str) -> ToyModel:
    return ToyModel()


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


def make_pool(n: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    words = ["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta", "iota"]
    tokens = [list(rng.choice(words, size=int(rng.integers(1, 25)))) for _ in range(n)]
    return pa.table({"id": [f"s{i:03d}" for i in range(n)], "tokens": tokens})


@pytest.fixture(scope="module")
def ray_cluster():  # type: ignore[no-untyped-def]
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_every_id_once_with_two_actors_and_uneven_batches(ray_cluster, tmp_path) -> None:  # type: ignore[no-untyped-def]
    pool = make_pool(53)
    cfg = ScoringConfig(k=4, concurrency=2, batch_size=7, cpus_per_actor=0.5)
    out = score_pool_to_file(pool, tmp_path, tmp_path / "conf.parquet", cfg, loader=toy_loader)
    assert out.column("id").to_pylist() == pool.column("id").to_pylist()
    saved = read_confidence_table(tmp_path / "conf.parquet")
    assert saved.schema.names == [
        "id", "n_tokens", "ner.ec", "ner.da", "ner.n_entities", "id.ec", "id.da",
    ]  # fmt: skip
    assert saved.column("n_tokens").to_pylist() == [len(t) for t in pool["tokens"].to_pylist()]
    for col in ("ner.ec", "ner.da", "id.ec", "id.da"):
        values = saved.column(col).to_numpy()
        assert np.all((values >= 0) & (values <= 1)), col
    # dropout is on in the k passes: some sentences' passes disagree
    assert saved.column("ner.da").to_numpy().min() < 1.0


def test_results_do_not_depend_on_actor_count_or_batching(ray_cluster, tmp_path) -> None:  # type: ignore[no-untyped-def]
    pool = make_pool(30, seed=1)
    one = score_pool(
        pool, tmp_path, ScoringConfig(k=3, batch_size=30, cpus_per_actor=1), loader=toy_loader
    )
    two = score_pool(
        pool,
        tmp_path,
        ScoringConfig(k=3, concurrency=2, batch_size=30, cpus_per_actor=0.5, max_tokens=64),
        loader=toy_loader,
    )
    # the deterministic pass is batch-independent: EC equal whatever the batching
    np.testing.assert_allclose(one["ner.ec"].to_numpy(), two["ner.ec"].to_numpy(), atol=1e-6)
    np.testing.assert_array_equal(
        one["ner.n_entities"].to_numpy(), two["ner.n_entities"].to_numpy()
    )


def test_ec_only_runs_no_stochastic_pass(ray_cluster, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = score_pool(make_pool(12), tmp_path, ScoringConfig(ec_only=True), loader=toy_loader)
    assert out.column_names == ["id", "n_tokens", "ner.ec", "ner.n_entities", "id.ec"]


def test_killed_actor_is_restarted_and_no_row_is_lost_or_duplicated(ray_cluster, tmp_path) -> None:  # type: ignore[no-untyped-def]
    pool = make_pool(41, seed=2)
    cfg = ScoringConfig(k=3, concurrency=2, batch_size=5, cpus_per_actor=0.5)
    clean = score_pool(pool, tmp_path / "clean", cfg, loader=toy_loader)
    (tmp_path / "faulty").mkdir()
    faulty = score_pool(pool, tmp_path / "faulty", cfg, loader=toy_loader, scorer_cls=DyingScorer)
    assert (tmp_path / "faulty" / "died").exists(), "the fault was not injected"
    assert faulty.column("id").to_pylist() == pool.column("id").to_pylist()
    # dropout masks are seeded per batch, so the retried batch scores exactly as before
    assert faulty.equals(clean)


def broken_loader(checkpoint: str) -> ToyModel:
    from mtal_ray.errors import ScoringError

    raise ScoringError(f"{checkpoint}: not a checkpoint (test)")


def test_loader_error_in_actor_surfaces_as_scoring_error(ray_cluster, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from mtal_ray.errors import ScoringError

    with pytest.raises(ScoringError, match="not a checkpoint"):
        score_pool(make_pool(6), tmp_path, ScoringConfig(ec_only=True), loader=broken_loader)
