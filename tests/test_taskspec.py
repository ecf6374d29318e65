"""The task table: one place for the facts, and everything that derives from it agrees."""

from __future__ import annotations

import pytest

from mtal_ray.data.conll import CONLL_TASKS
from mtal_ray.data.corpus import FORMAT_TASKS
from mtal_ray.data.schema import TAGGING_TASKS, TASK_COLUMNS, TASK_DEPENDS_ON, task_columns
from mtal_ray.data.slu import FILES, TASK_FILES
from mtal_ray.data.vocab import LABEL_COLUMN
from mtal_ray.errors import MtalError
from mtal_ray.scoring.table import SPAN_TASKS, confidence_schema
from mtal_ray.taskspec import TASK_SPECS, task_spec, tasks_of_format, with_dependencies
from mtal_ray.training.config import DEFAULT_LABEL_SMOOTHING


def test_derived_names_keep_their_values():
    assert list(TASK_SPECS) == ["dp", "ner", "sf", "id", "re"]
    assert {t: list(c) for t, c in TASK_COLUMNS.items()} == {
        "dp": ["dp.head", "dp.deprel"],
        "ner": ["ner.tags"],
        "sf": ["sf.tags"],
        "id": ["id.label"],
        "re": ["re.relations"],
    }
    assert TAGGING_TASKS == ("ner", "sf")
    assert TASK_DEPENDS_ON == {"re": "ner"}
    assert SPAN_TASKS == ("ner", "sf", "re")
    assert FORMAT_TASKS == {
        "conllu": ("dp", "ner"),
        "slu": ("sf", "id"),
        "jsonl": ("ner", "re"),
        "conll": ("ner", "sf"),
    }
    assert tasks_of_format("conll") == CONLL_TASKS
    assert DEFAULT_LABEL_SMOOTHING == {"dp": 0.2, "ner": 0.2, "sf": 0.1, "id": 0.1, "re": 0.1}
    assert LABEL_COLUMN["dp"] == "dp.deprel" and LABEL_COLUMN["re"] == "re.relations"
    assert "re.n_pairs" in confidence_schema(["ner", "re"], ec_only=True).names


def test_every_spec_is_consistent():
    for name, spec in TASK_SPECS.items():
        assert spec.name == name
        assert all(column.startswith(f"{name}.") for column in spec.column_names)
        assert spec.label_column in spec.column_names
        assert all(required in TASK_SPECS for required in spec.requires)
        assert spec.formats and all(name in tasks_of_format(f) for f in spec.formats)
        assert 0.0 <= spec.label_smoothing < 1.0
    assert set(TASK_FILES) == set(tasks_of_format("slu")) and set(TASK_FILES.values()) <= set(FILES)


def test_dependencies_and_unknown_tasks():
    assert with_dependencies(["re"]) == ["ner", "re"]
    assert with_dependencies(["id", "sf"]) == ["sf", "id"]
    assert with_dependencies([]) == []
    with pytest.raises(MtalError, match="unknown task 'pos'"):
        task_spec("pos")
    with pytest.raises(MtalError, match="known tasks: dp, ner, sf, id, re"):
        task_columns("pos")


def test_task_plugins_read_the_table():
    from mtal_ray.tasks import TASKS

    assert list(TASKS) == list(TASK_SPECS)
    for name, cls in TASKS.items():
        spec = TASK_SPECS[name]
        assert cls.spec is spec
        assert cls.columns == spec.column_names and cls.requires == spec.requires
