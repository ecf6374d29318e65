"""Rows <-> Label Studio tasks and results, without a server (the round trip is exact)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from mtal_ray.errors import DataFormatError, MtalError
from mtal_ray.label_studio.convert import (
    ROOT,
    from_annotation,
    labeling_config,
    prediction_result,
    to_task,
)

DP_NER = {
    "id": "s1",
    "tokens": ["Peter", "Smith", "sleeps", "in", "Paris"],
    "dp.head": [3, 1, 0, 5, 3],
    "dp.deprel": ["nsubj", "flat", "root", "case", "obl"],
    "ner.tags": ["B-PER", "I-PER", "O", "O", "B-LOC"],
}
SF_ID = {
    "id": "u1",
    "tokens": ["flights", "to", "new", "york"],
    "sf.tags": ["O", "O", "B-toloc", "I-toloc"],
    "id.label": "atis_flight",
}
NER_RE = {
    "id": "r1",
    "tokens": ["John", "works", "for", "Acme"],
    "ner.tags": ["B-Peop", "O", "O", "B-Org"],
    "re.relations": [{"head": 0, "tail": 1, "type": "Work_For"}],
}
LABELS = {
    "dp": ["case", "flat", "nsubj", "obl", "root"],
    "ner": ["B-LOC", "B-PER", "I-PER", "O", "B-Peop", "B-Org"],
    "sf": ["B-toloc", "I-toloc", "O"],
    "id": ["atis_flight", "atis_fare"],
    "re": ["Work_For", "Live_In"],
}


def _round_trip(row: dict, tasks: list[str]) -> dict:
    result = prediction_result(row, tasks)
    return from_annotation(result, sid=row["id"], tokens=row["tokens"], tasks=tasks, where="t")


@pytest.mark.parametrize(
    ("row", "tasks"), [(DP_NER, ["dp", "ner"]), (SF_ID, ["sf", "id"]), (NER_RE, ["ner", "re"])]
)
def test_prediction_result_round_trips(row, tasks):
    assert _round_trip(row, tasks) == row


@pytest.mark.parametrize("tasks", [["dp", "ner"], ["sf", "id"], ["ner", "re"]])
def test_labeling_config_is_xml_with_one_control_per_task(tasks):
    root = ET.fromstring(labeling_config(tasks, LABELS))
    names = {el.get("name") for el in root.iter() if el.get("name")}
    assert set(tasks) - {"re"} <= names
    if "dp" in tasks:
        assert {r.get("value") for r in root.iter("Relation")} == set(LABELS["dp"])
        assert {lab.get("value") for lab in root.find("Labels[@name='dp']")} == {"word", ROOT}
    if "ner" in tasks:
        ner = {lab.get("value") for lab in root.find("Labels[@name='ner']")}
        assert ner == {"LOC", "PER", "Peop", "Org"}
    if "id" in tasks:
        assert {c.get("value") for c in root.iter("Choice")} == set(LABELS["id"])


def test_a_project_cannot_hold_trees_and_relations():
    with pytest.raises(MtalError, match="both"):
        labeling_config(["dp", "re"], LABELS)


def test_task_carries_requested_tasks_round_score_and_only_their_prediction():
    task = to_task(
        DP_NER,
        ["ner"],
        ["dp", "ner"],
        run="r",
        iteration=2,
        prediction=DP_NER,
        confidence={"ner": 0.25, "dp": 0.9},
        model_version="r/round_2",
    )
    data = task["data"]
    assert data["mtal_tasks"] == ["ner"] and data["mtal_round"] == 2
    assert data["dp_text"] == "" and "not dp" in data["asked"]
    (prediction,) = task["predictions"]
    assert prediction["score"] == 0.25
    assert {r["from_name"] for r in prediction["result"] if "from_name" in r} == {"ner"}


def _edit(result: list[dict], **changes) -> list[dict]:
    return [dict(r, **changes) for r in result]


def test_malformed_annotations_are_refused():
    result = prediction_result(DP_NER, ["dp", "ner"])
    # a word without head
    cut = [r for r in result if not (r.get("type") == "relation" and r["to_id"] == "dp_2")]
    with pytest.raises(DataFormatError, match="word 2 'Smith' has no head"):
        from_annotation(cut, sid="s1", tokens=DP_NER["tokens"], tasks=["dp"], where="t")
    # a cycle
    cyc = [
        dict(r, from_id="dp_5") if r.get("type") == "relation" and r["to_id"] == "dp_3" else r
        for r in result
    ]
    with pytest.raises(DataFormatError, match=r"cycle|no root"):
        from_annotation(cyc, sid="s1", tokens=DP_NER["tokens"], tasks=["dp"], where="t")
    # overlapping spans
    ner = [r for r in result if r.get("from_name") == "ner"]
    extra = dict(ner[0], id="x", value=dict(ner[0]["value"], start=6, end=18, labels=["LOC"]))
    with pytest.raises(DataFormatError, match="overlap"):
        from_annotation([*ner, extra], sid="s1", tokens=DP_NER["tokens"], tasks=["ner"], where="t")
    # results of tasks not asked for are ignored
    row = from_annotation(result, sid="s1", tokens=DP_NER["tokens"], tasks=["ner"], where="t")
    assert "dp.head" not in row and row["ner.tags"] == DP_NER["ner.tags"]


def test_a_run_started_over_in_its_folder_does_not_take_the_earlier_runs_tasks(tmp_path):
    """Tasks carry ``mtal_run``: folder, path digest and the run's own key, so after
    ``--restart`` (same folder, new state) the earlier run's tasks are not this run's; a
    round sent before the key was recorded in its manifest keeps the folder-and-path name."""
    from mtal_ray.driver.state import LoopState, save_state
    from mtal_ray.label_studio.annotator import _manifest_run, run_key

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    first = LoopState(config_digest="d", iterations=3)
    save_state(run_dir, first)
    before = run_key(run_dir)
    save_state(run_dir, LoopState(config_digest="d", iterations=3))  # --restart: a new run
    after = run_key(run_dir)
    assert before != after and before.endswith(first.run_key[:8])
    legacy = before.rsplit("-", 1)[0]
    assert legacy.startswith("run-") and after.startswith(legacy)
    assert _manifest_run({"label_studio": {"project": 3}}, run_dir) == legacy
    assert _manifest_run({"label_studio": {"project": 3, "run": before}}, run_dir) == before
