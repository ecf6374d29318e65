"""AL splits, vocabularies, the synthetic corpus and the data CLI."""

from __future__ import annotations

import json

import pytest

from mtal_ray.cli import main
from mtal_ray.data import (
    build_vocab,
    build_vocabs,
    load_corpus,
    make_al_split,
    make_synthetic_corpus,
    make_table,
    take_ids,
    unseen_labels,
    write_synthetic_corpus,
)
from mtal_ray.errors import MtalError, UnseenLabelError


def tiny(n: int, prefix: str = "t"):
    return make_table(
        {
            "id": [f"{prefix}{i}" for i in range(n)],
            "tokens": [["w"] for _ in range(n)],
            "id.label": [f"L{i % 3}" for i in range(n)],
        }
    )


def test_al_split_sizes_disjointness_and_determinism():
    train, dev = tiny(1000), tiny(300, "d")
    a = make_al_split(train, dev, seed=7)
    assert len(a.labeled) == 20 and len(a.dev) == 40 and len(a.pool) == 980
    pool = a.pool.to_pylist()
    assert pool == sorted(pool) and not a.dev_from_train
    assert not set(a.labeled) & set(pool)
    assert set(a.labeled) | set(pool) == set(train.column("id").to_pylist())
    assert make_al_split(train.take(list(range(999, -1, -1))), dev, seed=7) == a
    assert make_al_split(train, dev, seed=8) != a


def test_al_split_count_and_dev_from_train():
    split = make_al_split(tiny(100), None, seed=0, initial_count=5, dev_multiple=2)
    assert (len(split.labeled), len(split.dev), len(split.pool)) == (5, 10, 85)
    assert split.dev_from_train
    assert not set(split.dev) & (set(split.pool.to_pylist()) | set(split.labeled))
    with pytest.raises(MtalError, match="impossible"):
        make_al_split(tiny(10), None, seed=0, initial_count=10)


def test_al_split_is_the_documented_draw():
    """The Arrow split draws what the sorted-id permutation of the docstring draws."""
    import numpy as np

    train = tiny(50)
    split = make_al_split(train, None, seed=3, initial_count=4, dev_multiple=1.5)
    ids = sorted(train.column("id").to_pylist())
    order = [ids[i] for i in np.random.default_rng(3).permutation(50)]
    assert split.labeled == tuple(sorted(order[:4]))
    assert split.dev == tuple(order[4:10])
    assert split.pool.to_pylist() == sorted(order[10:])


def test_take_ids_keeps_order_and_refuses_unknown():
    table = tiny(5)
    assert take_ids(table, ["t3", "t1"]).column("id").to_pylist() == ["t3", "t1"]
    assert take_ids(table, []).num_rows == 0
    with pytest.raises(MtalError, match=r"1 ids not in the table, e.g. \['nope'\]"):
        take_ids(table, ["t2", "nope"])


def test_vocab_order_and_unseen_labels_are_reported():
    train = make_table(
        {"id": ["a", "b"], "tokens": [["x", "y"], ["z"]], "sf.tags": [["B-c", "O"], ["B-a"]]}
    )
    vocab = build_vocab(train, "sf")
    assert vocab.labels == ("O", "B-a", "B-c")
    assert vocab.index("B-c") == 2
    with pytest.raises(UnseenLabelError, match="'I-c' does not occur in the training split"):
        vocab.index("I-c")
    dev = make_table({"id": ["d"], "tokens": [["x", "y"]], "sf.tags": [["B-c", "I-c"]]})
    assert unseen_labels(build_vocabs(train, ["sf"]), dev) == {"sf": {"I-c": 1}}


def test_synthetic_corpus_is_deterministic_and_round_trips(tmp_path):
    a, b = make_synthetic_corpus(seed=1), make_synthetic_corpus(seed=1)
    assert a.splits["train"].equals(b.splits["train"])
    assert a.tasks == ["sf", "id"]
    root = write_synthetic_corpus(tmp_path / "syn", seed=1)
    loaded = load_corpus(root)
    assert loaded.splits["train"].equals(a.splits["train"])
    assert "SYNTHETIC" in (root / "README.md").read_text()


def test_cli_stats_prints_one_json_object(tmp_path, capsys):
    write_synthetic_corpus(tmp_path / "syn", n_train=20, n_dev=5, n_test=5)
    assert main(["data", "stats", str(tmp_path / "syn"), "--format", "slu"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["splits"]["train"]["sentences"] == 20
    assert sum(result["splits"]["train"]["tasks"]["id"]["labels"].values()) == 20


def test_cli_error_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.conllu"
    bad.write_text("1\tHi\thi\n\n")
    assert main(["data", "stats", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "bad.conllu:1:" in err
    assert main(["data", "stats", str(tmp_path / "missing")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_limit_eval_draws_a_seeded_sample_in_file_order(tmp_path) -> None:
    from types import SimpleNamespace

    from mtal_ray.config import ExperimentConfig
    from mtal_ray.data.splits import sample_rows
    from mtal_ray.driver.loop import load_run_data

    # a dev split sorted by label, ten rows per intent: its first 20 rows hold 2 intents
    labels = [f"intent{k}" for k in range(6) for _ in range(10)]
    dev = make_table(
        {
            "id": [f"d{i}" for i in range(60)],
            "tokens": [["w"] for _ in range(60)],
            "id.label": labels,
        }
    )
    first = sample_rows(dev, 20, seed=0)
    assert first.num_rows == 20
    assert len(set(first.column("id.label").to_pylist())) >= 4  # several intents, not 2
    order = [int(x[1:]) for x in first.column("id").to_pylist()]
    assert order == sorted(order)  # file order kept
    assert sample_rows(dev, 20, seed=0).equals(first)  # same seed, same rows
    assert not sample_rows(dev, 20, seed=1).equals(first)  # another seed, another sample
    assert sample_rows(dev, 60, seed=0).equals(dev) and sample_rows(dev, None, 0).equals(dev)

    # load_run_data applies it to dev and test (seed: the experiment's), not to train
    for split in ("train", "dev", "test"):
        folder = tmp_path / "slu" / split
        folder.mkdir(parents=True)
        (folder / "seq.in").write_text("".join(f"w{i}\n" for i in range(60)))
        (folder / "seq.out").write_text("O\n" * 60)
        (folder / "label").write_text("".join(f"{x}\n" for x in labels))
    raw = {"data": {"path": str(tmp_path / "slu"), "limit_train": 20, "limit_eval": 20}}
    for seed in (0, 3):
        cfg = ExperimentConfig.model_validate({**raw, "seed": seed})
        run = load_run_data(SimpleNamespace(data=cfg.data, seed=seed), tmp_path)
        assert run.train.column("tokens").to_pylist() == [[f"w{i}"] for i in range(20)]
        assert run.dev_source is not None and run.test is not None
        intents = set(run.dev_source.column("id.label").to_pylist())
        assert len(intents) >= 4, intents
        expected = sample_rows(dev, 20, seed).column("id").to_pylist()  # d<i> -> w<i>
        assert run.test.column("tokens").to_pylist() == [[f"w{x[1:]}"] for x in expected]
