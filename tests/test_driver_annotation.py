"""Human annotation round trip: export, fill in, import; malformed imports are refused."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from mtal_ray.data import load_corpus, make_synthetic_corpus, make_table, write_jsonl
from mtal_ray.data.jsonl import read_jsonl
from mtal_ray.data.slu import read_slu, write_slu
from mtal_ray.driver.annotation import (
    export_batch,
    import_annotations,
    imported_annotations,
    mask_tasks,
    round_dir,
    with_dependencies,
)
from mtal_ray.errors import DataFormatError, MtalError


def test_with_dependencies_adds_ner_for_re():
    assert with_dependencies(["re"]) == ["ner", "re"]
    assert with_dependencies(["id", "sf"]) == ["sf", "id"]


def test_mask_tasks_nulls_unlabeled_tasks():
    gold = make_synthetic_corpus(20, 5, 5).splits["train"]
    table = mask_tasks(
        gold, {"sf": ["train-1", "train-2"], "id": ["train-2", "train-3"]}, ["sf", "id"]
    )
    rows = {r["id"]: r for r in table.to_pylist()}
    assert sorted(rows) == ["train-1", "train-2", "train-3"]
    assert rows["train-1"]["id.label"] is None and rows["train-1"]["sf.tags"] is not None
    assert rows["train-3"]["sf.tags"] is None and rows["train-3"]["id.label"] is not None
    assert rows["train-2"]["sf.tags"] is not None and rows["train-2"]["id.label"] is not None


def test_slu_round_trip_with_prefilled_predictions(tmp_path):
    gold = make_synthetic_corpus(30, 5, 5).splits["train"]
    ids = ["train-4", "train-9", "train-2"]
    tasks = {"train-4": ["sf", "id"], "train-9": ["sf", "id"], "train-2": ["id"]}
    # "Predictions": every slot O and one fixed intent.
    predictions = make_table(
        {
            "id": gold.column("id").to_pylist(),
            "tokens": gold.column("tokens").to_pylist(),
            "sf.tags": [["O"] * len(t) for t in gold.column("tokens").to_pylist()],
            "id.label": ["music"] * gold.num_rows,
        }
    )
    target = export_batch(tmp_path, 1, gold, tasks, predictions, "slu")
    exported = read_slu(target)
    assert exported.column("id.label").to_pylist() == ["music"] * 3
    assert exported.column("sf.tags").to_pylist()[2] is None  # sf not requested for train-2
    manifest = json.loads((round_dir(tmp_path, 1) / "manifest.json").read_text())
    assert manifest["ids"] == ids

    # The annotator corrects the intents with the gold ones and returns the folder.
    gold_rows = {r["id"]: r for r in gold.to_pylist()}
    fixed = exported.set_column(
        exported.column_names.index("id.label"),
        "id.label",
        pa.array([gold_rows[i]["id.label"] for i in ids]),
    )
    write_slu(fixed, tmp_path / "returned")
    stored = import_annotations(tmp_path, 1, [tmp_path / "returned"])
    assert stored.column("id").to_pylist() == ids
    assert stored.column("id.label").to_pylist() == [gold_rows[i]["id.label"] for i in ids]
    assert imported_annotations(tmp_path).num_rows == 3


def test_slu_import_refuses_unannotated_and_wrong_words(tmp_path):
    gold = make_synthetic_corpus(30, 5, 5).splits["train"]
    tasks = {"train-4": ["sf", "id"], "train-9": ["sf", "id"]}
    export_batch(tmp_path, 0, gold, tasks, None, "slu")  # nothing pre-filled
    folder = round_dir(tmp_path, 0) / "batch"
    with pytest.raises(
        DataFormatError, match=r"batch/seq.out:1: sentence .train-4. is not annotated for task .sf."
    ):
        import_annotations(tmp_path, 0, [folder])
    # Fill in, but change a word of the second sentence.
    table = load_corpus(folder, "slu").splits["batch"]
    toks = table.column("tokens").to_pylist()
    toks[1] = ["changed", *toks[1][1:]]
    filled = make_table(
        {
            "id": table.column("id").to_pylist(),
            "tokens": toks,
            "sf.tags": [["O"] * len(t) for t in toks],
            "id.label": ["music", "music"],
        }
    )
    write_slu(filled, tmp_path / "ret")
    with pytest.raises(DataFormatError, match=r"ret:2: sentence 'train-9': the words differ"):
        import_annotations(tmp_path, 0, [tmp_path / "ret"])
    assert imported_annotations(tmp_path) is None  # nothing stored after a refused import


def test_jsonl_import_checks_ids_and_line(tmp_path):
    table = make_table(
        {
            "id": ["a", "b"],
            "tokens": [["John", "works"], ["Acme", "hires"]],
            "ner.tags": [["B-Peop", "O"], ["B-Org", "O"]],
            "re.relations": [[], []],
        }
    )
    export_batch(tmp_path, 2, table, {"a": ["ner", "re"], "b": ["ner", "re"]}, table, "jsonl")
    exported = read_jsonl(round_dir(tmp_path, 2) / "batch.json")
    bad = exported.set_column(0, "id", pa.array(["a", "zzz"]))
    write_jsonl(bad, tmp_path / "back.json")
    with pytest.raises(DataFormatError, match=r"back.json:2: sentence 'zzz' is not in this batch"):
        import_annotations(tmp_path, 2, [tmp_path / "back.json"])
    write_jsonl(exported.slice(0, 1), tmp_path / "half.json")
    with pytest.raises(MtalError, match="1 sentence\\(s\\) of the batch are missing"):
        import_annotations(tmp_path, 2, [tmp_path / "half.json"])
    write_jsonl(exported, tmp_path / "ok.json")
    assert import_annotations(tmp_path, 2, [tmp_path / "ok.json"]).num_rows == 2
