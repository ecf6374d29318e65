"""Readers and writers of the three corpus formats, on hand-made files."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mtal_ray.data import (
    bio_errors,
    bio_to_spans,
    load_corpus,
    read_conllu,
    read_jsonl,
    read_slu,
    spans_to_bio,
    write_conllu,
    write_jsonl,
    write_slu,
)
from mtal_ray.data.conllu import format_conllu
from mtal_ray.data.jsonl import format_jsonl

CONLLU = (
    "# sent_id = s1\n"
    "# text = I don't know Paris\n"
    "1\tI\tI\tPRON\tPRP\t_\t3\tnsubj\t3:nsubj\tNER=O\n"
    "2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_\n"
    "2\tdo\tdo\tAUX\tVBP\t_\t3\taux\t3:aux\tNER=O\n"
    "3\tn't\tnot\tPART\tRB\t_\t0\troot\t0:root\tSpaceAfter=No|NER=O\n"
    "3.1\tknow\tknow\tVERB\tVB\t_\t_\t_\t3:conj\t_\n"
    "4\tParis\tParis\tPROPN\tNNP\t_\t3\tobj\t3:obj\tNER=B-LOC\n"
    "\n"
    "# sent_id = s2\n"
    "1\tHi\thi\tINTJ\tUH\t_\t0\troot\t0:root\tNER=O\n"
    "\n"
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_conllu_reads_words_heads_and_ner_skipping_ranges_and_empty_nodes(tmp_path):
    table = read_conllu(write(tmp_path, "a.conllu", CONLLU))
    rows = table.to_pylist()
    assert [r["id"] for r in rows] == ["s1", "s2"]
    assert rows[0]["tokens"] == ["I", "do", "n't", "Paris"]
    assert rows[0]["dp.head"] == [3, 3, 0, 3]
    assert rows[0]["dp.deprel"] == ["nsubj", "aux", "root", "obj"]
    assert rows[0]["ner.tags"] == ["O", "O", "O", "B-LOC"]


def test_conllu_round_trip_is_byte_identical_and_writes_new_labels(tmp_path):
    path = write(tmp_path, "a.conllu", CONLLU)
    table = read_conllu(path)
    assert format_conllu(table) == CONLLU
    tags = table.column("ner.tags").to_pylist()
    tags[1] = ["B-PER"]
    edited = table.set_column(table.column_names.index("ner.tags"), "ner.tags", pa.array(tags))
    out = tmp_path / "b.conllu"
    write_conllu(edited, out)
    assert "1\tHi\thi\tINTJ\tUH\t_\t0\troot\t0:root\tNER=B-PER\n" in out.read_text()
    assert read_conllu(out).column("ner.tags").to_pylist()[1] == ["B-PER"]


def test_conllu_unannotated_sentence_is_null_and_round_trips(tmp_path):
    text = "# sent_id = u\n1\tHi\thi\tINTJ\tUH\t_\t_\t_\t_\t_\n\n"
    table = read_conllu(write(tmp_path, "u.conllu", text))
    row = table.to_pylist()[0]
    assert row["dp.head"] is None and row["ner.tags"] is None
    assert format_conllu(table) == text


@pytest.mark.parametrize(
    ("line", "lineno", "needle"),
    [
        ("1\tHi\thi\tINTJ\tUH\t_\t0\troot\t0:root", 2, "expected 10 tab-separated columns"),
        ("1\tHi\thi\tINTJ\tUH\t_\tx\troot\t0:root\tNER=O", 2, "HEAD 'x' is not an integer"),
        ("1\tHi\thi\tINTJ\tUH\t_\t5\troot\t0:root\tNER=O", 2, "HEAD 5 out of range 0..2"),
        ("1\tHi\thi\tINTJ\tUH\t_\t0\troot\t0:root\tSpaceAfter=No", 2, "no NER= tag"),
    ],
)
def test_conllu_malformed_line_names_file_and_line(tmp_path, line, lineno, needle):
    text = "# sent_id = bad\n" + line + "\n2\tthere\tthere\tADV\tRB\t_\t1\tadvmod\t_\tNER=O\n\n"
    path = write(tmp_path, "bad.conllu", text)
    with pytest.raises(Exception) as info:
        read_conllu(path)
    message = str(info.value)
    assert f"bad.conllu:{lineno}:" in message
    assert needle in message


def test_conllu_strict_bio_refuses_dangling_inside_tag(tmp_path):
    text = "1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\tNER=O\n2\tBob\tBob\tPROPN\tNNP\t_\t1\tvocative\t_\tNER=I-PER\n\n"
    path = write(tmp_path, "bio.conllu", text)
    assert read_conllu(path).column("ner.tags").to_pylist() == [["O", "I-PER"]]
    with pytest.raises(Exception, match=r"bio\.conllu:2: NER tag 'I-PER' follows 'O'"):
        read_conllu(path, strict_bio=True)


def make_slu(tmp_path: Path, seq_in: str, seq_out: str, label: str) -> Path:
    folder = tmp_path / "train"
    folder.mkdir()
    (folder / "seq.in").write_text(seq_in)
    (folder / "seq.out").write_text(seq_out)
    (folder / "label").write_text(label)
    return folder


def test_slu_reads_and_round_trips(tmp_path):
    folder = make_slu(
        tmp_path,
        "fly to new york\nshow fares\n",
        "O O B-toloc I-toloc\nO O\n",
        "atis_flight\natis_flight#atis_airfare\n",
    )
    table = read_slu(folder)
    assert table.column("id").to_pylist() == ["train-0", "train-1"]
    assert table.column("id.label").to_pylist() == ["atis_flight", "atis_flight#atis_airfare"]
    assert bio_to_spans(table.column("sf.tags").to_pylist()[0]) == [(2, 4, "toloc")]
    out = tmp_path / "out" / "train"
    write_slu(table, out)
    for name in ("seq.in", "seq.out", "label"):
        assert (out / name).read_bytes() == (folder / name).read_bytes()


def test_slu_tag_count_mismatch_names_file_and_line(tmp_path):
    folder = make_slu(tmp_path, "a b\nc d e\n", "O O\nO O\n", "x\ny\n")
    with pytest.raises(Exception, match=r"train/seq\.out:2: 2 slot tags for 3 words"):
        read_slu(folder)


def test_slu_line_count_mismatch_is_reported(tmp_path):
    folder = make_slu(tmp_path, "a b\nc d\n", "O O\nO O\n", "x\n")
    with pytest.raises(
        Exception, match=r"train:2: line counts differ: seq\.in 2, seq\.out 2, label 1"
    ):
        read_slu(folder)


def test_slu_strict_bio(tmp_path):
    folder = make_slu(tmp_path, "a b\n", "O I-city\n", "x\n")
    with pytest.raises(Exception, match=r"seq\.out:1: word 2: tag 'I-city' follows 'O'"):
        read_slu(folder, strict_bio=True)


JSONL = (
    '{"id": "r1", "tokens": ["John", "Smith", "works", "for", "Acme", "Inc"], '
    '"entities": [{"start": 0, "end": 2, "type": "Peop"}, {"start": 4, "end": 6, "type": "Org"}], '
    '"relations": [{"head": 0, "tail": 1, "type": "Work_For"}]}\n'
)


def test_jsonl_reads_spans_as_bio_and_round_trips(tmp_path):
    path = write(tmp_path, "train.json", JSONL)
    table = read_jsonl(path)
    row = table.to_pylist()[0]
    assert row["ner.tags"] == ["B-Peop", "I-Peop", "O", "O", "B-Org", "I-Org"]
    assert row["re.relations"] == [{"head": 0, "tail": 1, "type": "Work_For"}]
    assert format_jsonl(table) == JSONL
    write_jsonl(table, tmp_path / "copy.json")
    assert (tmp_path / "copy.json").read_text() == JSONL


def test_jsonl_unsorted_entities_keep_relation_meaning(tmp_path):
    line = (
        '{"id": "r", "tokens": ["a", "b", "c"], '
        '"entities": [{"start": 2, "end": 3, "type": "Org"}, {"start": 0, "end": 1, "type": "Peop"}], '
        '"relations": [{"head": 1, "tail": 0, "type": "Work_For"}]}\n'
    )
    row = read_jsonl(write(tmp_path, "u.json", line)).to_pylist()[0]
    spans = bio_to_spans(row["ner.tags"])
    rel = row["re.relations"][0]
    assert spans[rel["head"]] == (0, 1, "Peop") and spans[rel["tail"]] == (2, 3, "Org")


@pytest.mark.parametrize(
    ("entities", "relations", "needle"),
    [
        ('[{"start": 1, "end": 9, "type": "Org"}]', "[]", "entity 0 span [1, 9) out of range"),
        (
            '[{"start": 0, "end": 1, "type": "Org"}]',
            '[{"head": 0, "tail": 3, "type": "X"}]',
            "relation 0 tail 3 points at a missing entity",
        ),
        (
            '[{"start": 0, "end": 2, "type": "A"}, {"start": 1, "end": 3, "type": "B"}]',
            "[]",
            "entities 0 and 1 overlap",
        ),
    ],
)
def test_jsonl_malformed_names_file_and_line(tmp_path, entities, relations, needle):
    good = '{"id": "ok", "tokens": ["x"]}\n'
    bad = f'{{"id": "b", "tokens": ["a", "b", "c"], "entities": {entities}, "relations": {relations}}}\n'
    path = write(tmp_path, "bad.json", good + bad)
    with pytest.raises(Exception) as info:
        read_jsonl(path)
    assert "bad.json:2:" in str(info.value) and needle in str(info.value)


def test_load_corpus_detects_formats_and_orders_splits(tmp_path):
    (tmp_path / "c").mkdir()
    for split in ("test", "train", "dev"):
        write(tmp_path / "c", f"{split}.conllu", CONLLU)
    corpus = load_corpus(tmp_path / "c")
    assert corpus.format == "conllu"
    assert list(corpus.splits) == ["train", "dev", "test"]
    assert corpus.tasks == ["dp", "ner"]
    single = load_corpus(write(tmp_path, "x.json", JSONL))
    assert single.format == "jsonl" and list(single.splits) == ["x"]
    assert single.tasks == ["ner", "re"]
    with pytest.raises(Exception, match="no split 'dev'"):
        single.split("dev")


tag_types = st.sampled_from(["PER", "LOC", "a.b"])


@st.composite
def spans_strategy(draw):
    n = draw(st.integers(1, 12))
    cuts = sorted(draw(st.sets(st.integers(0, n), max_size=8)))
    spans = []
    for start, end in zip(cuts[::2], cuts[1::2], strict=False):
        if end > start:
            spans.append((start, end, draw(tag_types)))
    return n, spans


@given(spans_strategy())
def test_spans_bio_round_trip(case):
    n, spans = case
    tags = spans_to_bio(n, spans)
    assert bio_to_spans(tags) == spans
    assert bio_errors(tags) == []
