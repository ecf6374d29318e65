"""Scoring pieces that need neither Ray nor a model: buckets, outputs -> columns, table I/O."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtal_ray.errors import ScoringError
from mtal_ray.scoring.buckets import (
    BUCKET_COLUMN,
    bucket_blocks,
    bucket_table,
    length_buckets,
    padding_ratio,
    split_buckets,
)
from mtal_ray.scoring.config import ScoringConfig
from mtal_ray.scoring.outputs import TaskOutput, predictions, score_outputs
from mtal_ray.scoring.table import (
    check_complete,
    confidence_schema,
    read_confidence_table,
    table_metadata,
    write_confidence_table,
)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(1, 60), min_size=0, max_size=80),
    st.integers(1, 10),
    st.one_of(st.none(), st.integers(1, 200)),
)
def test_buckets_partition_rows_and_respect_limits(
    lengths: list[int], batch_size: int, max_tokens: int | None
) -> None:
    batches = length_buckets(lengths, batch_size, max_tokens)
    flat = np.concatenate(batches) if batches else np.array([], int)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    lens = np.asarray(lengths)
    for b in batches:
        assert 1 <= len(b) <= batch_size
        if max_tokens is not None and len(b) > 1:
            assert lens[b].max() * len(b) <= max_tokens
    # consecutive in sorted order: every batch's rows are no longer than the next batch's
    for a, b in itertools.pairwise(batches):
        assert lens[a].max() <= lens[b].min()


def test_bucketing_cuts_padding() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 60, size=512)
    naive = [np.arange(i, min(i + 32, 512)) for i in range(0, 512, 32)]
    assert padding_ratio(lengths, length_buckets(lengths, 32)) > 0.9 > padding_ratio(lengths, naive)


def test_bucket_table_adds_n_tokens() -> None:
    table = pa.table({"id": ["a", "b", "c"], "tokens": [["x"] * 3, ["y"], ["z"] * 2]})
    pieces = bucket_table(table, batch_size=2)
    assert [p.column("id").to_pylist() for p in pieces] == [["b", "c"], ["a"]]
    assert pieces[0].column("n_tokens").to_pylist() == [1, 2]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 30), min_size=1, max_size=200),
    st.integers(1, 16),
    st.integers(1, 40),
)
def test_blocks_hold_whole_buckets_and_split_back(lengths, batch_size, n_blocks) -> None:  # type: ignore[no-untyped-def]
    """Joining buckets into Ray Data blocks changes no batch: splitting every block gives
    bucket_table's buckets, in order, and no block holds more rows than it must."""
    table = pa.table(
        {"id": [f"s{i}" for i in range(len(lengths))], "tokens": [["w"] * n for n in lengths]}
    )
    buckets = bucket_table(table, batch_size, 64)
    blocks = bucket_blocks(table, batch_size, 64, n_blocks)
    assert all(BUCKET_COLUMN in b.column_names for b in blocks)
    assert len(blocks) <= min(n_blocks, len(buckets))
    target = -(-len(lengths) // n_blocks)
    assert all(b.num_rows < target + batch_size for b in blocks)
    split = [part for block in blocks for part in split_buckets(block)]
    assert len(split) == len(buckets)
    for ours, theirs in zip(split, buckets, strict=True):
        assert ours.equals(theirs)


def test_score_outputs_hand_computed() -> None:
    det = {
        "ner": TaskOutput(
            "token",
            np.array([[[0.5, 0.5], [1.0, 0.0]]]),
            np.array([[True, True]]),
            n_entities=np.array([1]),
        ),
        "id": TaskOutput("class", np.array([[0.25, 0.25, 0.25, 0.25]])),
    }

    def tagged(labels: list[int], intent: int) -> dict[str, TaskOutput]:
        return {
            "ner": TaskOutput("token", np.eye(2)[labels][None], np.array([[True, True]])),
            "id": TaskOutput("class", np.eye(4)[[intent]]),
        }

    passes = [tagged([0, 1], 2), tagged([0, 1], 2), tagged([1, 1], 3)]
    cols = score_outputs(det, passes)
    assert cols["ner.ec"] == pytest.approx([0.5])
    assert cols["id.ec"] == pytest.approx([0.0])
    # ner: word 1 (0, 0, 1) -> 2 pairs, word 2 (1, 1, 1) -> 6 pairs; 8 / (2 * 6)
    assert cols["ner.da"] == pytest.approx([8 / 12])
    assert cols["id.da"] == pytest.approx([2 / 6])
    assert cols["ner.n_entities"].tolist() == [1]
    assert set(score_outputs(det)) == {"ner.ec", "id.ec", "ner.n_entities"}


def test_arc_predictions_ignore_self_and_padding() -> None:
    arcs = np.array([[[0.1, 0.0, 0.6, 0.3], [0.2, 0.1, 0.7, 0.0], [0.0, 0.0, 0.0, 0.9]]])
    mask = np.array([[True, True, False]])
    # word 2's largest mass is on itself (column 2) and word 1's on padded word 3
    assert predictions(TaskOutput("arc", arcs, mask))[0, :2].tolist() == [2, 0]


def test_pair_outputs_count_pairs_and_apply_temperature() -> None:
    probs = np.array([[[0.9, 0.1], [0.5, 0.5]], [[0.5, 0.5], [0.5, 0.5]]])
    mask = np.array([[True, True], [False, False]])
    out = {"re": TaskOutput("pair", probs, mask, n_entities=np.array([2, 1]))}
    plain = score_outputs(out)
    assert plain["re.n_pairs"].tolist() == [2, 0]
    assert plain["re.ec"][1] == 1.0
    h = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1)) / math.log(2)
    assert plain["re.ec"][0] == pytest.approx(1 - (h + 1) / 2)
    hot = score_outputs(out, temperatures={"re": 2.0})
    assert hot["re.ec"][0] < plain["re.ec"][0]


def test_schema_and_atomic_roundtrip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    schema = confidence_schema(["dp", "ner", "re"], ec_only=False)
    assert schema.names == [
        "id", "n_tokens", "dp.ec", "dp.da", "ner.ec", "ner.da", "ner.n_entities",
        "re.ec", "re.da", "re.n_entities", "re.n_pairs",
    ]  # fmt: skip
    assert "sf.da" not in confidence_schema(["sf"], ec_only=True).names
    table = pa.table({"id": ["a", "b"], "n_tokens": pa.array([3, 4], pa.int32())})
    path = write_confidence_table(table, tmp_path / "sub" / "conf.parquet", {"k": 10})
    assert read_confidence_table(path).column("id").to_pylist() == ["a", "b"]
    assert table_metadata(read_confidence_table(path)) == {"k": 10}
    assert [p.name for p in path.parent.iterdir()] == ["conf.parquet"]


def test_failed_write_leaves_nothing_behind(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Parquet cannot store a union column: the write fails after the temp file exists
    union = pa.UnionArray.from_sparse(
        pa.array([0, 1], pa.int8()), [pa.array([1, 2]), pa.array(["a", "b"])]
    )
    target = tmp_path / "conf.parquet"
    target.write_bytes(b"old")
    with pytest.raises(pa.ArrowNotImplementedError):
        write_confidence_table(pa.table({"id": ["a", "b"], "u": union}), target)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["conf.parquet"]


def test_check_complete_reports_missing_duplicated_and_extra() -> None:
    table = pa.table({"id": ["a", "a", "c"]})
    with pytest.raises(ScoringError, match=r"1 ids scored more than once.*1 ids missing.*'b'"):
        check_complete(table, ["a", "b"])
    check_complete(pa.table({"id": ["b", "a"]}), ["a", "b"])


def test_read_missing_file_is_a_scoring_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ScoringError, match="cannot read"):
        read_confidence_table(tmp_path / "nope.parquet")


def test_config_defaults_and_validation() -> None:
    cfg = ScoringConfig()
    assert (cfg.k, cfg.ec_only, cfg.concurrency, cfg.threads()) == (10, False, 1, 1)
    assert ScoringConfig(cpus_per_actor=2).threads() == 2
    with pytest.raises(ValueError):
        ScoringConfig(k=1)
    with pytest.raises(ValueError):
        ScoringConfig(temperatures={"ner": 0.0})
    with pytest.raises(ValueError):
        ScoringConfig(unknown=1)  # type: ignore[call-arg]
