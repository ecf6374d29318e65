"""Task metrics against hand-computed values."""

from __future__ import annotations

import pytest

from mtal_ray.data.schema import make_table
from mtal_ray.tasks.classification import IntentTask
from mtal_ray.tasks.dependency import DependencyTask, attachment_scores
from mtal_ray.tasks.relation import RelationTask
from mtal_ray.tasks.tagging import NerTask


def test_las_uas_hand_computed() -> None:
    gold = make_table(
        {
            "id": ["a", "b", "c"],
            "tokens": [["w"] * 4, ["w"] * 2, ["w"]],
            "dp.head": [[2, 0, 2, 2], [0, 1], None],
            "dp.deprel": [["nsubj", "root", "obj", "punct"], ["root", "obj"], None],
        }
    )
    predicted = [
        # heads right on 1,2,4 ; labels right on 1 and 2 (4 has the wrong label)
        {"dp.head": [2, 0, 1, 2], "dp.deprel": ["nsubj", "root", "obj", "obj"]},
        # head right on 1 (label wrong), wrong on 2
        {"dp.head": [0, 0], "dp.deprel": ["nsubj", "obj"]},
        {"dp.head": [0], "dp.deprel": ["root"]},  # row not annotated: ignored
    ]
    scores = DependencyTask(["nsubj", "root", "obj", "punct"]).evaluate(predicted, gold)
    assert scores["uas"] == pytest.approx(4 / 6)
    assert scores["las"] == pytest.approx(2 / 6)
    assert scores["main"] == scores["las"]


def test_attachment_scores_can_exclude_punctuation() -> None:
    scores = attachment_scores(
        [[2, 0, 2]],
        [["nsubj", "root", "punct"]],
        [[2, 0, 1]],
        [["nsubj", "root", "punct"]],
        exclude_punct=True,
    )
    assert scores == {"uas": 1.0, "las": 1.0}


def test_relation_strict_f1_on_predicted_entities_hand_computed() -> None:
    gold = make_table(
        {
            "id": ["a", "b"],
            "tokens": [["A", "B", "C", "D"], ["E", "F"]],
            "ner.tags": [["B-PER", "O", "B-LOC", "B-ORG"], ["B-PER", "B-ORG"]],
            "re.relations": [
                [
                    {"head": 0, "tail": 1, "type": "Live_In"},
                    {"head": 0, "tail": 2, "type": "Work_For"},
                ],
                [{"head": 0, "tail": 1, "type": "Work_For"}],
            ],
        }
    )
    predicted = [
        {
            # NER misses "D" (ORG): the gold Work_For relation cannot be found
            "ner.tags": ["B-PER", "O", "B-LOC", "O"],
            "re.relations": [
                {"head": 0, "tail": 1, "type": "Live_In"},  # correct
                {"head": 1, "tail": 0, "type": "Live_In"},  # wrong direction
            ],
        },
        {
            # right boundaries but wrong entity type on "F": strict match fails
            "ner.tags": ["B-PER", "B-LOC"],
            "re.relations": [{"head": 0, "tail": 1, "type": "Work_For"}],
        },
    ]
    scores = RelationTask(["Live_In", "Work_For"]).evaluate(predicted, gold)
    precision, recall = 1 / 3, 1 / 3
    assert scores["precision"] == pytest.approx(precision)
    assert scores["recall"] == pytest.approx(recall)
    assert scores["main"] == pytest.approx(2 * precision * recall / (precision + recall))


def test_tagging_span_f1_hand_computed() -> None:
    gold = make_table(
        {
            "id": ["a", "b"],
            "tokens": [["w"] * 4, ["w"] * 2],
            "ner.tags": [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]],
        }
    )
    predicted = [
        {"ner.tags": ["B-PER", "O", "O", "B-LOC"]},  # PER boundary wrong, LOC right
        {"ner.tags": ["B-ORG", "B-LOC"]},  # ORG right, spurious LOC
    ]
    scores = NerTask(["O", "B-PER", "I-PER", "B-LOC", "B-ORG"]).evaluate(predicted, gold)
    assert scores["precision"] == pytest.approx(2 / 4)
    assert scores["recall"] == pytest.approx(2 / 3)
    assert scores["main"] == pytest.approx(2 * (1 / 2) * (2 / 3) / (1 / 2 + 2 / 3))


def test_intent_accuracy_counts_unseen_gold_as_error_and_skips_unannotated() -> None:
    gold = make_table(
        {"id": ["a", "b", "c", "d"], "tokens": [["w"]] * 4, "id.label": ["x", "y", "z", None]}
    )
    predicted = [{"id.label": "x"}, {"id.label": "x"}, {"id.label": "y"}, {"id.label": "x"}]
    assert IntentTask(["x", "y"]).evaluate(predicted, gold)["main"] == pytest.approx(1 / 3)
