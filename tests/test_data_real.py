"""The real corpora in ../shared/data: counts from their READMEs and byte-exact round trips."""

from __future__ import annotations

import json

import pytest

from mtal_ray.cli import main
from mtal_ray.data import read_slu, write_slu
from mtal_ray.data.conllu import format_conllu, read_conllu
from mtal_ray.data.jsonl import format_jsonl, read_jsonl

pytestmark = pytest.mark.realdata


def stats(capsys, path) -> dict:
    assert main(["data", "stats", str(path), "--compact"]) == 0
    return json.loads(capsys.readouterr().out)


def test_ewt_stats_match_readme(shared_data, capsys):
    result = stats(capsys, shared_data / "ewt_dp_ner")
    assert result["format"] == "conllu" and result["tasks"] == ["dp", "ner"]
    splits = result["splits"]
    assert [splits[s]["sentences"] for s in ("train", "dev", "test")] == [12543, 2001, 2077]
    assert [splits[s]["tokens"] for s in ("train", "dev", "test")] == [204579, 25149, 25097]
    assert splits["train"]["tasks"]["ner"]["labels"] == {"LOC": 2698, "ORG": 1434, "PER": 2873}
    assert splits["dev"]["tasks"]["ner"]["labels"] == {"LOC": 399, "ORG": 224, "PER": 343}
    assert splits["test"]["tasks"]["ner"]["entities"] == 1088
    assert len(splits["train"]["tasks"]["dp"]["labels"]) == 49


def test_atis_stats_match_readme(shared_data, capsys):
    result = stats(capsys, shared_data / "atis")
    splits = result["splits"]
    assert [splits[s]["sentences"] for s in ("train", "dev", "test")] == [4478, 500, 893]
    assert [splits[s]["tokens"] for s in ("train", "dev", "test")] == [50497, 5703, 9164]
    intents = splits["train"]["tasks"]["id"]["labels"]
    assert intents["atis_flight"] == 3309
    every = {label for s in splits.values() for label in s["tasks"]["id"]["labels"]}
    assert len(every) == 26  # README: 26 label strings over all splits
    assert intents["atis_flight#atis_airfare"] == 19
    unseen = result["unseen_in_train"]
    assert set(unseen["test"]["id"]) == {
        "atis_day_name",
        "atis_airfare#atis_flight",
        "atis_flight#atis_airline",
        "atis_flight_no#atis_airline",
    }
    assert set(unseen["dev"]["id"]) == {"atis_airfare#atis_flight_time"}


def test_conll04_stats_match_readme(shared_data, capsys):
    splits = stats(capsys, shared_data / "conll04")["splits"]
    assert [splits[s]["sentences"] for s in ("train", "dev", "test")] == [922, 231, 288]
    assert [splits[s]["tasks"]["ner"]["entities"] for s in ("train", "dev", "test")] == [
        3377,
        893,
        1079,
    ]
    assert splits["train"]["tasks"]["re"]["labels"] == {
        "Kill": 179,
        "Live_In": 330,
        "Located_In": 247,
        "OrgBased_In": 271,
        "Work_For": 256,
    }


@pytest.mark.parametrize("split", ["train", "dev", "test"])
def test_round_trips_are_byte_identical(shared_data, tmp_path, split):
    conllu = shared_data / "ewt_dp_ner" / f"{split}.conllu"
    assert format_conllu(read_conllu(conllu)) == conllu.read_text(encoding="utf-8")
    jsonl = shared_data / "conll04" / f"{split}.json"
    assert format_jsonl(read_jsonl(jsonl)) == jsonl.read_text(encoding="utf-8")
    write_slu(read_slu(shared_data / "atis" / split), tmp_path / split)
    for name in ("seq.in", "seq.out", "label"):
        assert (tmp_path / split / name).read_bytes() == (
            shared_data / "atis" / split / name
        ).read_bytes()


def test_stats_reads_an_unseen_corpus_of_a_known_format(shared_data, tmp_path, capsys):
    # A corpus it has never seen: a single split folder, copied under another name.
    table = read_slu(shared_data / "atis" / "dev").slice(0, 7)
    write_slu(table, tmp_path / "mini_snips_like")
    result = stats(capsys, tmp_path / "mini_snips_like")
    assert result["splits"]["mini_snips_like"]["sentences"] == 7
