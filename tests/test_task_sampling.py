"""Per-step task sampling: probabilities, chi-square on many draws, annotated rows only,
epochs without repetition, determinism across workers and resumption, loss combination."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pydantic
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mtal_ray.errors import ConfigError
from mtal_ray.training.config import TrainingConfig
from mtal_ray.training.sampling import (
    TaskSampler,
    annotated_rows,
    combine_losses,
    task_probabilities,
)

SIZES = {"dp": 10, "ner": 40, "re": 0, "id": 90}
COLUMNS = {"ner": "ner.tags", "re": "re.relations", "id": "id.label"}


def test_probabilities_by_hand() -> None:
    assert task_probabilities(SIZES, "uniform") == pytest.approx(
        {"dp": 1 / 3, "ner": 1 / 3, "re": 0.0, "id": 1 / 3}
    )
    assert task_probabilities(SIZES, "proportional") == pytest.approx(
        {"dp": 10 / 140, "ner": 40 / 140, "re": 0.0, "id": 90 / 140}
    )
    # τ = 2: √10 : √40 : √90 = 1 : 2 : 3
    assert task_probabilities(SIZES, "temperature", 2.0) == pytest.approx(
        {"dp": 1 / 6, "ner": 2 / 6, "re": 0.0, "id": 3 / 6}
    )
    # τ = 1 is proportional; a large τ approaches uniform
    assert task_probabilities(SIZES, "temperature", 1.0) == pytest.approx(
        task_probabilities(SIZES, "proportional")
    )
    hot = task_probabilities(SIZES, "temperature", 1e6)
    assert hot == pytest.approx(task_probabilities(SIZES, "uniform"), abs=1e-5)


def test_probability_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"training\.task_sampling: 'joint' does not sample"):
        task_probabilities(SIZES, "joint")
    with pytest.raises(ConfigError, match="no training row is annotated"):
        task_probabilities({"ner": 0, "re": 0}, "uniform")
    with pytest.raises(ConfigError, match="sampling_temperature"):
        task_probabilities(SIZES, "temperature", 0.0)
    with pytest.raises(pydantic.ValidationError, match="task_sampling"):
        TrainingConfig(task_sampling="round-robin")
    with pytest.raises(pydantic.ValidationError, match="sampling_temperature"):
        TrainingConfig(sampling_temperature=0)


#: χ² critical values at α = 0.001 by degrees of freedom (tables).
CHI2_999 = {1: 10.828, 2: 13.816, 3: 16.266}


@pytest.mark.parametrize(
    ("method", "temperature"),
    [("uniform", 1.0), ("proportional", 1.0), ("temperature", 2.0), ("temperature", 3.0)],
)
def test_task_draws_follow_the_configured_distribution(method: str, temperature: float) -> None:
    sizes = {"dp": 10, "ner": 40, "id": 90}
    probabilities = task_probabilities(sizes, method, temperature)
    rows = {t: np.arange(n) for t, n in sizes.items()}
    sampler = TaskSampler(rows, probabilities, batch_size=4, seed=7)
    draws = 20_000
    counts = {t: 0 for t in sizes}
    for step in range(draws):
        counts[sampler.task_at(step)] += 1
    chi2 = sum((counts[t] - draws * p) ** 2 / (draws * p) for t, p in probabilities.items())
    assert chi2 < CHI2_999[len(sizes) - 1], (counts, probabilities)
    # and the test has power: the same draws are far from a wrong distribution
    wrong = {"dp": 0.5, "ner": 0.3, "id": 0.2}
    assert sum((counts[t] - draws * p) ** 2 / (draws * p) for t, p in wrong.items()) > 100


def partial_table() -> pa.Table:
    """12 rows: ner on rows 0-7, re on rows 0-3, id on rows 4-11 (disjoint annotation)."""
    n = 12
    tags = [["O"] if i < 8 else None for i in range(n)]
    relations = [[] if i < 4 else None for i in range(n)]
    intents = ["x" if i >= 4 else None for i in range(n)]
    return pa.table(
        {
            "id": [f"r{i}" for i in range(n)],
            "tokens": [["w"]] * n,
            "ner.tags": pa.array(tags, pa.list_(pa.string())),
            "re.relations": pa.array(
                relations,
                pa.list_(
                    pa.struct([("head", pa.int32()), ("tail", pa.int32()), ("type", pa.string())])
                ),
            ),
            "id.label": pa.array(intents, pa.string()),
        }
    )


def test_batches_hold_only_rows_annotated_for_the_drawn_task() -> None:
    table = partial_table()
    rows = annotated_rows(table, {**COLUMNS, "dp": "dp.head"})
    assert rows["ner"].tolist() == list(range(8)) and rows["re"].tolist() == [0, 1, 2, 3]
    assert rows["id"].tolist() == list(range(4, 12)) and rows["dp"].tolist() == []
    sampler = TaskSampler.from_table(table, COLUMNS, "uniform", batch_size=4, seed=1)
    annotated = {t: set(r.tolist()) for t, r in rows.items()}
    seen = set()
    for step in range(300):
        task, batch, _ = sampler.batch_at(step)
        seen.add(task)
        assert len(batch) == 4 and set(batch.tolist()) <= annotated[task]
    assert seen == {"ner", "re", "id"}


def test_each_task_sees_every_row_once_per_epoch() -> None:
    sampler = TaskSampler.from_table(partial_table(), COLUMNS, "proportional", batch_size=4)
    by_task: dict[str, list[int]] = {"ner": [], "re": [], "id": []}
    epochs: dict[str, list[int]] = {"ner": [], "re": [], "id": []}
    for step in range(200):
        task, batch, epoch = sampler.batch_at(step)
        by_task[task].extend(batch.tolist())
        epochs[task].append(epoch)
    for task, n in (("ner", 8), ("re", 4), ("id", 8)):
        stream = by_task[task]
        for start in range(0, len(stream) - n + 1, n):  # batch 4 divides n: aligned epochs
            assert sorted(stream[start : start + n]) == sorted(
                annotated_rows(partial_table(), COLUMNS)[task].tolist()
            )
        assert epochs[task][: 2 * n // 4 + 1] == sorted(epochs[task][: 2 * n // 4 + 1])


@settings(max_examples=25, deadline=None)
@given(
    start=st.integers(0, 300),
    world=st.sampled_from([1, 2, 4]),
    micro=st.integers(1, 3),
    seed=st.integers(0, 5),
)
def test_workers_split_one_global_batch_and_resume_exactly(
    start: int, world: int, micro: int, seed: int
) -> None:
    def make() -> TaskSampler:
        return TaskSampler.from_table(
            partial_table(), COLUMNS, "temperature", micro * world, 2.0, seed
        )

    fresh, resumed = make(), make()
    streams = [resumed.batches(start, rank, world) for rank in range(world)]
    for step in range(start, start + 5):
        task, full, epoch = fresh.batch_at(step)
        shares = [next(s) for s in streams]
        assert all(s[1] == step and s[0] == epoch for s in shares)
        assert np.concatenate([s[2] for s in shares]).tolist() == full.tolist()
        assert resumed.task_at(step) == task


def test_combine_losses_joint_and_sampled() -> None:
    a = torch.tensor(2.0, requires_grad=True)
    b = torch.tensor(3.0, requires_grad=True)
    weights = {"ner": 0.5}.get
    losses = {"ner": a * 1.0, "re": b * 1.0}
    joint = combine_losses(losses, lambda t: weights(t, 1.0))
    assert joint.item() == pytest.approx(0.5 * 2 + 3)
    sampled = combine_losses(losses, lambda t: weights(t, 1.0), "re")
    assert sampled.item() == pytest.approx(3.0)
    sampled.backward()
    assert a.grad is not None and a.grad.item() == 0.0  # in the graph, not moved
    assert b.grad.item() == 1.0
    assert not math.isnan(sampled.item())
