"""Corpora as people have them (issue 14): tolerant slu, nested entities, the CoNLL column
format, checked trees and IDs, strict JSON offsets, empty files, ``data convert``.

Every bad input is checked through the CLI with its exact one-line message: exit status 2,
``error: ...`` on stderr, no traceback, and no file written.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mtal_ray.cli import main
from mtal_ray.config import load_config
from mtal_ray.data import load_corpus, read_conll, read_jsonl, read_slu, resolve_overlaps
from mtal_ray.data.conll import format_conll, row_lines
from mtal_ray.data.conllu import tree_problem
from mtal_ray.data.convert import check_tasks
from mtal_ray.data.corpus import detect_format
from mtal_ray.data.slu import format_slu
from mtal_ray.data.text import ReadReport
from mtal_ray.driver.annotation import export_batch, import_annotations, round_dir
from mtal_ray.errors import ConfigError, DataFormatError, MtalError


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def refused(capsys, *args: str) -> str:
    """The one error line of a refused command (exit 2, no traceback)."""
    code, out, err = run_cli(capsys, *args)
    assert code == 2, (out, err)
    assert out == ""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0][len("error: ") :]


def stats(capsys, *args: str) -> dict:
    code, out, err = run_cli(capsys, "data", "stats", *args, "--compact")
    assert code == 0, err
    return json.loads(out)


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# ----------------------------------------------------------------------- slu: tolerant

SEQ_IN = "show flights to boston\nfares from denver\n"
SEQ_OUT = "O O O B-toloc\nO O B-fromloc\n"
LABEL = "atis_flight\natis_airfare\n"


def slu_split(root: Path, seq_in: str, seq_out: str, label: str, bom: bool = False) -> Path:
    root.mkdir(parents=True)
    for name, text in (("seq.in", seq_in), ("seq.out", seq_out), ("label", label)):
        data = text.encode()
        (root / name).write_bytes(b"\xef\xbb\xbf" + data if bom else data)
    return root


def test_slu_accepts_trailing_spaces_crlf_bom_and_whitespace_runs(tmp_path):
    canonical = read_slu(slu_split(tmp_path / "c" / "train", SEQ_IN, SEQ_OUT, LABEL))
    messy_out = "O O O B-toloc \r\nO  O\tB-fromloc \r\n"
    messy_in = "show flights to boston\r\n fares  from denver\r\n"
    folder = slu_split(
        tmp_path / "m" / "train", messy_in, messy_out, "atis_flight \natis_airfare\n", bom=True
    )
    report = ReadReport()
    messy = read_slu(folder, report=report)
    assert messy.equals(canonical)
    assert report.to_dict()["normalised"] == {
        "bom": 3,
        "crlf": 4,
        "trailing_whitespace": 3,
        "whitespace_runs": 2,
    }
    # The writer writes the canonical form; canonical files round-trip byte for byte.
    assert format_slu(messy) == {"seq.in": SEQ_IN, "seq.out": SEQ_OUT, "label": LABEL}
    clean = ReadReport()
    read_slu(tmp_path / "c" / "train", report=clean)
    assert clean.to_dict()["normalised"] == {}


def test_slu_trailing_space_release_reports_same_counts_plus_normalised(tmp_path, capsys):
    slu_split(tmp_path / "c" / "train", SEQ_IN, SEQ_OUT, LABEL)
    slu_split(
        tmp_path / "m" / "train",
        SEQ_IN.replace("\n", "\r\n"),
        SEQ_OUT.replace("\n", " \n"),
        LABEL,
        bom=True,
    )
    clean = stats(capsys, tmp_path / "c")["splits"]["train"]
    messy = stats(capsys, tmp_path / "m")["splits"]["train"]
    assert clean["normalised"] == {}
    assert messy.pop("normalised") == {"bom": 3, "crlf": 2, "trailing_whitespace": 2}
    clean.pop("normalised")
    assert messy == clean
    assert clean["sentences"] == 2 and clean["tasks"]["sf"]["labels"] == {"fromloc": 1, "toloc": 1}


def test_slu_tag_count_message_counts_real_tags(tmp_path, capsys):
    slu_split(tmp_path / "train", "a b c\n", "O O\n", "x\n")
    assert refused(capsys, "data", "stats", tmp_path / "train") == (
        f"{tmp_path}/train/seq.out:1: 2 slot tags for 3 words in seq.in"
    )


# ------------------------------------------------------------- nested / overlapping entities

NESTED = (
    '{"id": "n1", "tokens": ["BERT", "fine", "tuning", "for", "NER"], "entities": ['
    '{"start": 0, "end": 3, "type": "Task"}, {"start": 0, "end": 1, "type": "Method"}, '
    '{"start": 4, "end": 5, "type": "Task"}], "relations": ['
    '{"head": 1, "tail": 2, "type": "Used-for"}, {"head": 0, "tail": 2, "type": "Part-of"}]}\n'
    '{"id": "n2", "tokens": ["plain"], "entities": [], "relations": []}\n'
)


def test_overlapping_entities_error_names_file_line_spans_and_option(tmp_path, capsys):
    (tmp_path / "train.json").write_text(NESTED)
    assert refused(capsys, "data", "stats", tmp_path / "train.json") == (
        f"{tmp_path}/train.json:1: entities 0 and 1 overlap: [0, 3) 'Task' and [0, 1) 'Method' "
        "(nested or overlapping mentions: set data.overlapping_entities / "
        "--overlapping-entities to keep-longest or keep-shortest)"
    )


@pytest.mark.parametrize(
    ("policy", "tags", "relations"),
    [
        (
            "keep-longest",
            ["B-Task", "I-Task", "I-Task", "O", "B-Task"],
            [{"head": 0, "tail": 1, "type": "Part-of"}],
        ),
        (
            "keep-shortest",
            ["B-Method", "O", "O", "O", "B-Task"],
            [{"head": 0, "tail": 1, "type": "Used-for"}],
        ),
    ],
)
def test_overlap_policies_keep_one_mention_and_drop_its_relations(
    tmp_path, policy, tags, relations
):
    (tmp_path / "train.json").write_text(NESTED)
    report = ReadReport()
    row = read_jsonl(
        tmp_path / "train.json", overlapping_entities=policy, report=report
    ).to_pylist()[0]
    assert row["ner.tags"] == tags
    assert row["re.relations"] == relations
    assert (report.dropped_entities, report.dropped_relations) == (1, 1)


def test_overlap_counts_in_stats_json(tmp_path, capsys):
    (tmp_path / "train.json").write_text(NESTED)
    result = stats(capsys, tmp_path, "--overlapping-entities", "keep-longest")
    split = result["splits"]["train"]
    assert (split["dropped_entities"], split["dropped_relations"]) == (1, 1)
    assert result["overlapping_entities"] == "keep-longest"
    corpus = load_corpus(tmp_path, overlapping_entities="keep-longest")
    assert corpus.report_params() == {
        "data.dropped_entities.train": 1,
        "data.dropped_relations.train": 1,
    }
    assert corpus.report_line() == (
        f"{tmp_path} (jsonl) was read leniently: train: dropped 1 overlapping entities and "
        "1 relations that used them (keep-longest)"
    )


def test_resolve_overlaps_is_greedy_by_length():
    spans = [(0, 10, "A"), (1, 3, "B"), (4, 6, "C"), (8, 12, "D")]
    assert resolve_overlaps(spans, "keep-longest") == [0]
    assert resolve_overlaps(spans, "keep-shortest") == [1, 2, 3]
    assert resolve_overlaps([(0, 1, "A"), (2, 3, "B")], "keep-longest") == [0, 1]


# ------------------------------------------------------------------- CoNLL column format

CONLL2003 = (
    "-DOCSTART- -X- -X- O\n"
    "\n"
    "EU NNP B-NP B-ORG\n"
    "rejects VBZ B-VP O\n"
    "German JJ B-NP B-MISC\n"
    "call NN I-NP O\n"
    ". . O O\n"
    "\n"
    "Peter NNP B-NP B-PER\n"
    "Blackburn NNP I-NP I-PER\n"
    "\n"
    "-DOCSTART- -X- -X- O\n"
    "\n"
    "BRUSSELS NNP B-NP B-LOC\n"
    "1996-08-22 CD I-NP O\n"
    "\n"
)


def test_conll2003_round_trips_byte_for_byte_and_skips_docstart(tmp_path):
    path = tmp_path / "train.conll"
    path.write_text(CONLL2003)
    table = read_conll(path)
    assert table.column("tokens").to_pylist() == [
        ["EU", "rejects", "German", "call", "."],
        ["Peter", "Blackburn"],
        ["BRUSSELS", "1996-08-22"],
    ]
    assert table.column("ner.tags").to_pylist()[1] == ["B-PER", "I-PER"]
    assert table.column("id").to_pylist() == ["train-1", "train-2", "train-3"]
    assert format_conll(table) == CONLL2003
    assert row_lines(table) == [3, 9, 14]
    # Edited tags are written in the tag column, the other columns and spacing stay.
    edited = table.set_column(
        table.column_names.index("ner.tags"),
        "ner.tags",
        [[["O"] * 5, ["B-PER", "I-PER"], ["O", "O"]]],
    )
    assert "BRUSSELS NNP B-NP O\n" in format_conll(edited)


def test_conll_tabs_columns_option_sf_and_unannotated(tmp_path):
    path = tmp_path / "dev.tsv"
    path.write_text("B-city\tboston\tNN\nO\tflights\tNNS\n\n_\tfares\tNNS\n")
    table = read_conll(path, columns={"token": 1, "sf": 0})
    assert table.column_names == ["id", "tokens", "sf.tags", "conll.raw"]
    assert table.column("sf.tags").to_pylist() == [["B-city", "O"], None]
    assert format_conll(table) == path.read_text() + ""  # columns kept in the table
    corpus = load_corpus(tmp_path, columns={"token": 1, "sf": 0})
    assert corpus.format == "conll" and corpus.tasks == ["sf"]


def test_conll_detected_by_content_not_suffix(tmp_path):
    (tmp_path / "train.txt").write_text(CONLL2003)
    (tmp_path / "README.txt").write_text("not a corpus\n")
    assert detect_format(tmp_path) == "conll"
    assert detect_format(tmp_path / "train.txt") == "conll"
    conllu = tmp_path / "u.conll"
    conllu.write_text("# sent_id = a\n1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\tNER=O\n\n")
    assert detect_format(conllu) == "conllu"
    corpus = load_corpus(tmp_path / "train.txt")
    assert list(corpus.splits) == ["train"] and corpus.tasks == ["ner"]


def test_conll_stats(tmp_path, capsys):
    (tmp_path / "train.conll").write_text(CONLL2003)
    result = stats(capsys, tmp_path)
    assert result["format"] == "conll" and result["tasks"] == ["ner"]
    assert result["splits"]["train"]["tasks"]["ner"]["labels"] == {
        "LOC": 1,
        "MISC": 1,
        "ORG": 1,
        "PER": 1,
    }


# ------------------------------------------------------------- every bad input, via the CLI


def conllu_sentence(rows: list[tuple[str, str]], sent_id: str = "s1") -> str:
    """A CoNLL-U sentence from (ID, HEAD) pairs."""
    lines = [f"# sent_id = {sent_id}"]
    for word_id, head in rows:
        rel = "root" if head == "0" else "dep"
        lines.append(f"{word_id}\tw{word_id}\t_\t_\t_\t_\t{head}\t{rel}\t_\tNER=O")
    return "\n".join(lines) + "\n\n"


BAD_CONLLU = [
    (
        [("1", "2"), ("2", "1")],
        "s.conllu:2: sentence 's1': words 1 -> 2 -> 1 form a cycle (they never reach the root)",
    ),
    ([("1", "0"), ("2", "2")], "s.conllu:3: sentence 's1': word 2 is its own head (self-loop)"),
    (
        [("1", "0"), ("2", "0")],
        "s.conllu:3: sentence 's1': 2 roots (words 1, 2); a tree has exactly one",
    ),
    (
        [("1", "0"), ("x-y", "_"), ("2", "1")],
        "s.conllu:3: invalid ID 'x-y' (expected a word number 1, 2, ..., a range n-m with n < m, "
        "or an empty node n.k)",
    ),
    (
        [("\u00b9", "0")],
        "s.conllu:2: invalid ID '\u00b9' (expected a word number 1, 2, ..., a range n-m with n < m, "
        "or an empty node n.k)",
    ),
    (
        [("1", "0"), ("3-2", "_"), ("2", "1")],
        "s.conllu:3: invalid range ID '3-2' (n-m needs n < m)",
    ),
    ([("1", "0"), ("2", "\u00b9")], "s.conllu:3: HEAD '\u00b9' is not an integer"),
]


@pytest.mark.parametrize(("rows", "message"), BAD_CONLLU)
def test_conllu_trees_and_ids_are_checked(tmp_path, capsys, rows, message):
    (tmp_path / "s.conllu").write_text(conllu_sentence(rows))
    assert refused(capsys, "data", "stats", tmp_path / "s.conllu") == f"{tmp_path}/{message}"


def test_tree_problem_accepts_trees_and_names_deep_cycles():
    assert tree_problem([0, 1, 2, 3]) is None
    assert tree_problem([0, 3, 4, 2]) == (
        1,
        "words 2 -> 3 -> 4 -> 2 form a cycle (they never reach the root)",
    )


def jsonl_line(entities: str, relations: str = "[]", extra: str = "") -> str:
    return f'{{"id": "a"{extra}, "tokens": ["x", "y", "z"], "entities": {entities}, "relations": {relations}}}\n'


E2 = '[{"start": 0, "end": 1, "type": "A"}, {"start": 2, "end": 3, "type": "B"}]'

BAD_JSONL = [
    (
        jsonl_line('[{"start": 0.9, "end": 2, "type": "A"}]'),
        "entity 0 'start' must be an integer, got 0.9",
    ),
    (
        jsonl_line('[{"start": true, "end": 2, "type": "A"}]'),
        "entity 0 'start' must be an integer, got true",
    ),
    (
        jsonl_line('[{"start": 0, "end": "3", "type": "A"}]'),
        "entity 0 'end' must be an integer, got \"3\"",
    ),
    (
        jsonl_line('[{"start": Infinity, "end": 2, "type": "A"}]'),
        "entity 0 'start' must be an integer, got Infinity",
    ),
    (jsonl_line('[{"start": 0, "end": 1, "type": 7}]'), "entity 0 has an invalid type 7"),
    (
        jsonl_line('[{"start": 0, "end": 2}]'),
        "entity 0 must be an object with 'start', 'end', 'type'",
    ),
    (
        jsonl_line('[{"start": 0, "end": 1, "type": "A"}, {"start": 0, "end": 1, "type": "A"}]'),
        "entities 0 and 1 are duplicates ([0, 1) 'A')",
    ),
    (
        jsonl_line(E2, '[{"head": 0, "tail": 0, "type": "R"}]'),
        "relation 0 links entity 0 to itself",
    ),
    (
        jsonl_line(E2, '[{"head": 0, "tail": 1.0, "type": "R"}]'),
        "relation 0 'tail' must be an integer, got 1.0",
    ),
    (
        jsonl_line(
            E2, '[{"head": 0, "tail": 1, "type": "R"}, {"head": 0, "tail": 1, "type": "R"}]'
        ),
        "relations 0 and 1 are duplicates (0 -> 1 'R')",
    ),
    (
        jsonl_line(E2, '[{"head": 0, "tail": 5, "type": "R"}]'),
        "relation 0 tail 5 points at a missing entity (the line has 2 entities)",
    ),
    (
        jsonl_line("[]", extra=', "id": true').replace('"id": "a", ', ""),
        "'id' must be a string or an integer, got true",
    ),
]


@pytest.mark.parametrize(("line", "message"), BAD_JSONL)
def test_jsonl_offsets_indices_and_duplicates_are_checked(tmp_path, capsys, line, message):
    (tmp_path / "t.json").write_text(line)
    assert (
        refused(capsys, "data", "stats", tmp_path / "t.json") == f"{tmp_path}/t.json:1: {message}"
    )


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("e.conllu", "e.conllu: no sentences (the file is empty)"),
        ("e.json", "e.json: no sentences (the file is empty)"),
        ("e.conll", "e.conll: no sentences (the file is empty)"),
    ],
)
def test_empty_corpus_file_is_an_error(tmp_path, capsys, name, message):
    (tmp_path / name).write_text("\n\n" if name != "e.conll" else "-DOCSTART- O\n\n")
    fmt = {"e.conllu": "conllu", "e.json": "jsonl", "e.conll": "conll"}[name]
    assert (
        refused(capsys, "data", "stats", tmp_path / name, "--format", fmt)
        == f"{tmp_path}/{message}"
    )


def test_empty_slu_split_is_an_error(tmp_path, capsys):
    slu_split(tmp_path / "train", "", "", "")
    assert refused(capsys, "data", "stats", tmp_path / "train") == (
        f"{tmp_path}/train/seq.in: no utterances (the file is empty)"
    )


def test_conll_bad_lines(tmp_path, capsys):
    (tmp_path / "a.conll").write_text("EU B-ORG\nrejects\n\n")
    assert refused(capsys, "data", "stats", tmp_path / "a.conll", "--format", "conll") == (
        f"{tmp_path}/a.conll:2: 1 column(s): the token (column 0) and the ner tag (column -1) "
        "must be two different columns (see data.columns)"
    )
    (tmp_path / "b.conll").write_text("EU B-ORG\nrejects S-ORG\n\n")
    assert refused(capsys, "data", "stats", tmp_path / "b.conll") == (
        f"{tmp_path}/b.conll:2: ner tag 'S-ORG' is neither O nor B-<type>/I-<type>"
        " (BIOES/BILOU tags: convert to BIO, S-/U- to B-, E-/L- to I-)"
    )
    assert refused(capsys, "data", "stats", tmp_path / "b.conll", "--columns", "token=0,pos=1") == (
        "data.columns: unknown key 'pos' (use token and one of ner, sf)"
    )


def test_not_utf8_corpus_and_config_are_one_line_errors(tmp_path, capsys):
    (tmp_path / "bad.conllu").write_bytes(b"1\tcaf\xe9\n")
    assert refused(capsys, "data", "stats", tmp_path / "bad.conllu") == (
        f"{tmp_path}/bad.conllu: not UTF-8 text (byte 0xe9 at offset 5)"
    )
    (tmp_path / "x.yaml").write_bytes(b"data:\n  path: caf\xe9\n")
    with pytest.raises(ConfigError) as info:  # the CLI prints it as one line, exit 2
        load_config(tmp_path / "x.yaml")
    assert str(info.value) == f"{tmp_path}/x.yaml: not UTF-8 text (byte 0xe9 at offset 17)"


# --------------------------------------------------------------------------- data convert


def test_convert_between_formats(tmp_path, capsys):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.conll").write_text(CONLL2003)
    code, out, err = run_cli(
        capsys, "data", "convert", tmp_path / "src", tmp_path / "j", "--to", "jsonl"
    )
    assert code == 0, err
    assert out == f"converted 1 split(s) to jsonl: train -> {tmp_path}/j/train.json\n"
    first = json.loads((tmp_path / "j" / "train.json").read_text().splitlines()[0])
    assert first["entities"] == [
        {"start": 0, "end": 1, "type": "ORG"},
        {"start": 2, "end": 3, "type": "MISC"},
    ]
    # ... and back: the same words and tags in canonical CoNLL.
    assert (
        run_cli(capsys, "data", "convert", tmp_path / "j", tmp_path / "c", "--to", "conll")[0] == 0
    )
    back = read_conll(tmp_path / "c" / "train.conll")
    original = read_conll(tmp_path / "src" / "train.conll")
    assert back.column("ner.tags").equals(original.column("ner.tags"))
    assert (tmp_path / "c" / "train.conll").read_text().startswith("EU B-ORG\nrejects O\n")
    # slu -> conll carries sf.
    slu_split(tmp_path / "atis" / "train", SEQ_IN, SEQ_OUT, LABEL)
    code, _, err = run_cli(
        capsys,
        "data",
        "convert",
        tmp_path / "atis",
        tmp_path / "sf",
        "--to",
        "conll",
        "--tasks",
        "sf",
    )
    assert code == 0, err
    assert (
        (tmp_path / "sf" / "train.conll")
        .read_text()
        .startswith("show O\nflights O\nto O\nboston B-toloc\n\n")
    )


def test_convert_refuses_what_the_target_cannot_carry_and_writes_nothing(tmp_path, capsys):
    slu_split(tmp_path / "atis" / "train", SEQ_IN, SEQ_OUT, LABEL)
    dst = tmp_path / "out"
    assert refused(capsys, "data", "convert", tmp_path / "atis", dst, "--to", "conll") == (
        "conll cannot carry task(s) id (it carries ner, sf); choose the tasks to convert with --tasks"
    )
    with pytest.raises(
        MtalError, match=r"^conll carries one tagging task, ner or sf \(asked for ner, sf\)$"
    ):
        check_tasks("conll", ["ner", "sf"], ["ner", "sf"])
    assert refused(capsys, "data", "convert", tmp_path / "atis", dst, "--to", "jsonl") == (
        "jsonl cannot carry task(s) sf, id (it carries ner, re); choose the tasks to convert with --tasks"
    )
    assert refused(
        capsys, "data", "convert", tmp_path / "atis", dst, "--to", "conllu", "--tasks", "dp"
    ) == ("task(s) dp not annotated in the source (it has: sf, id)")
    assert not dst.exists()
    (tmp_path / "re").mkdir()
    (tmp_path / "re" / "train.json").write_text(
        jsonl_line(E2, '[{"head": 0, "tail": 1, "type": "R"}]')
    )
    assert refused(
        capsys, "data", "convert", tmp_path / "re", dst, "--to", "jsonl", "--tasks", "re"
    ) == ("task re needs ner: add it to --tasks")
    # A target that exists is not overwritten; a bad second split leaves no first file.
    (tmp_path / "two").mkdir()
    (tmp_path / "two" / "train.conll").write_text(CONLL2003)
    (tmp_path / "two" / "test.conll").write_text("a B-X\nb\n\n")
    assert refused(capsys, "data", "convert", tmp_path / "two", dst, "--to", "jsonl").startswith(
        f"{tmp_path}/two/test.conll:2: 1 column(s)"
    )
    assert not dst.exists()
    dst.mkdir()
    (dst / "train.json").write_text("keep me\n")
    (tmp_path / "two" / "test.conll").unlink()
    assert refused(capsys, "data", "convert", tmp_path / "two", dst, "--to", "jsonl") == (
        f"{dst}/train.json: exists; remove it or choose another destination"
    )
    assert files_under(dst) == ["train.json"] and (dst / "train.json").read_text() == "keep me\n"


# ------------------------------------------------ human annotation: conll, trees, new labels


def conll_pool(tmp_path: Path):
    path = tmp_path / "train.conll"
    path.write_text(CONLL2003)
    return read_conll(path)


def test_conll_export_import_round_trip_by_position(tmp_path):
    pool = conll_pool(tmp_path)
    tasks = {"train-3": ["ner"], "train-1": ["ner"]}
    predictions = pool.set_column(
        pool.column_names.index("ner.tags"),
        "ner.tags",
        [[["O"] * len(t) for t in pool.column("tokens").to_pylist()]],
    )
    target = export_batch(tmp_path / "run", 1, pool, tasks, predictions, "conll")
    text = target.read_text()
    # The other columns stay, the gold tags do not: the model's predictions are pre-filled.
    assert "BRUSSELS NNP B-NP O\n" in text and "EU NNP B-NP O\n" in text
    assert "B-ORG" not in text
    returned = tmp_path / "returned.conll"
    returned.write_text(text.replace("BRUSSELS NNP B-NP O", "BRUSSELS NNP B-NP B-LOC"))
    stored = import_annotations(tmp_path / "run", 1, [returned])
    assert stored.column("id").to_pylist() == ["train-3", "train-1"]
    assert stored.column("ner.tags").to_pylist()[0] == ["B-LOC", "O"]


def test_import_refuses_labels_not_in_the_training_set_unless_allowed(tmp_path):
    pool = conll_pool(tmp_path)
    export_batch(tmp_path / "run", 1, pool, {"train-2": ["ner"]}, pool, "conll")
    returned = tmp_path / "returned.conll"
    batch = (round_dir(tmp_path / "run", 1) / "batch.conll").read_text()
    returned.write_text(batch.replace("B-PER", "B-ARTIST").replace("I-PER", "I-ARTIST"))
    known = {"ner": {"O", "B-PER", "I-PER"}}
    with pytest.raises(DataFormatError) as info:
        import_annotations(tmp_path / "run", 1, [returned], labels=known)
    assert str(info.value) == (
        f"{returned}:1: sentence 'train-2': ner label 'B-ARTIST' is not in the training "
        "label set (3 labels); pass --allow-new-labels to accept it"
    )
    assert not (round_dir(tmp_path / "run", 1) / "imported.parquet").exists()
    accepted: dict = {}
    import_annotations(
        tmp_path / "run", 1, [returned], labels=known, allow_new_labels=True, new_labels=accepted
    )
    assert accepted == {"ner": {"B-ARTIST": 1, "I-ARTIST": 1}}


def test_import_refuses_a_dependency_graph_that_is_not_a_tree(tmp_path):
    source = tmp_path / "train.conllu"
    source.write_text(
        conllu_sentence([("1", "0"), ("2", "1")], "s1") + conllu_sentence([("1", "0")], "s2")
    )
    pool = load_corpus(source).splits["train"]
    target = export_batch(tmp_path / "run", 2, pool, {"s1": ["dp"]}, None, "conllu")
    returned = tmp_path / "returned.conllu"
    returned.write_text(conllu_sentence([("1", "2"), ("2", "1")], "s1"))
    assert "root" not in target.read_text()  # nothing pre-filled, no gold shown
    with pytest.raises(DataFormatError) as info:
        import_annotations(tmp_path / "run", 2, [returned])
    assert str(info.value) == (
        f"{returned}:2: sentence 's1': words 1 -> 2 -> 1 form a cycle (they never reach the root)"
    )


# ------------------------------------------------------------ corpora as people have them


def test_conllu_word_lines_may_end_in_spaces_or_a_tab(tmp_path):
    from mtal_ray.data.conllu import read_conllu

    clean = "1\tEU\t_\t_\t_\t_\t0\troot\t_\tNER=B-ORG\n2\tsays\t_\t_\t_\t_\t1\tdep\t_\tNER=O\n"
    (tmp_path / "a.conllu").write_text(clean + "\n")
    messy = clean.replace("NER=B-ORG\n", "NER=B-ORG \n").replace("NER=O\n", "NER=O\t\n")
    (tmp_path / "b.conllu").write_text(messy)  # and no final blank line / newline issue
    report = ReadReport()
    a, b = read_conllu(tmp_path / "a.conllu"), read_conllu(tmp_path / "b.conllu", report=report)
    assert a.column("ner.tags").to_pylist() == b.column("ner.tags").to_pylist()
    assert b.column("ner.tags").to_pylist() == [["B-ORG", "O"]]
    assert report.normalised["trailing_whitespace"] == 2
    (tmp_path / "c.conllu").write_text(clean.rstrip("\n"))
    report = ReadReport()
    read_conllu(tmp_path / "c.conllu", report=report)
    assert report.normalised["missing_final_newline"] == 1


def test_a_no_break_space_stays_inside_its_token(tmp_path):
    """str.split() would cut "10 000" (U+00A0) in two and read the tag from the wrong column."""
    (tmp_path / "a.conll").write_text("It CD O\n10\u00a0000 CD O\nEU NNP B-ORG\n\n")
    table = read_conll(tmp_path / "a.conll")
    assert table.column("tokens").to_pylist() == [["It", "10\u00a0000", "EU"]]
    assert table.column("ner.tags").to_pylist() == [["O", "O", "B-ORG"]]
    # tab-separated: a token may hold a space
    (tmp_path / "b.conll").write_text("New York\tNNP\tB-LOC\nis\tVBZ\tO\n\n")
    table = read_conll(tmp_path / "b.conll")
    assert table.column("tokens").to_pylist() == [["New York", "is"]]
    assert table.column("ner.tags").to_pylist() == [["B-LOC", "O"]]


def test_a_lone_surrogate_escape_in_jsonl_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "a.json").write_text('{"tokens": ["ok"]}\n{"tokens": ["cut \\ud83d"]}\n')
    assert refused(capsys, "data", "stats", tmp_path / "a.json") == (
        f"{tmp_path}/a.json:2: invalid string: a lone surrogate escape \\ud83d (half of an "
        "emoji or other character cut in two) is not text; remove it or escape the whole pair"
    )
    (tmp_path / "b.json").write_text('{"tokens": ["whole \\ud83d\\ude00"]}\n')
    assert read_jsonl(tmp_path / "b.json").column("tokens").to_pylist() == [["whole \U0001f600"]]


def test_a_split_file_of_a_corpus_folder_that_cannot_be_read_is_named(tmp_path, capsys):
    (tmp_path / "train.conll").write_text("EU B-ORG\nrejects O\n\n")
    (tmp_path / "test.conll").write_text("EU B-ORG\n\n")
    (tmp_path / "dev.conll").write_text("")
    assert refused(capsys, "data", "stats", tmp_path) == (
        f"{tmp_path}/dev.conll: an empty file; fix or remove it"
    )
    (tmp_path / "dev.conll").write_text("EU B-ORG\n\n")
    assert sorted(stats(capsys, tmp_path)["splits"]) == ["dev", "test", "train"]
    for name in ("train", "dev", "test"):  # upper-case suffixes are read too
        (tmp_path / f"{name}.conll").rename(tmp_path / f"{name}.CONLL")
    assert sorted(stats(capsys, tmp_path)["splits"]) == ["dev", "test", "train"]


def test_an_intent_label_with_leading_whitespace_is_the_same_intent(tmp_path):
    report = ReadReport()
    table = read_slu(
        slu_split(tmp_path / "train", SEQ_IN, SEQ_OUT, " atis_flight\natis_airfare\n"),
        report=report,
    )
    assert table.column("id.label").to_pylist() == ["atis_flight", "atis_airfare"]
    assert report.normalised["whitespace_runs"] == 1


def test_a_comment_line_in_a_conll_file_gets_a_hint(tmp_path, capsys):
    (tmp_path / "a.conll").write_text("# sent_id = 1\nEU B-ORG\n\n")
    assert refused(capsys, "data", "stats", tmp_path / "a.conll") == (
        f"{tmp_path}/a.conll:1: ner tag '1' is neither O nor B-<type>/I-<type> (a comment "
        "line? the conll format has none, '#' may be a token: remove such lines, or give "
        "CoNLL-U as .conllu)"
    )
