"""Entry point, input contract, bad requests, config and the ``mtal-ray select`` CLI."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from mtal_ray.cli import selection as select_command
from mtal_ray.errors import EmptyPoolError, SelectionError
from mtal_ray.selection import (
    METHODS,
    BlpUdjs,
    CostModel,
    MtAvg,
    MtPar,
    MtR,
    SelectionConfig,
    StDa,
    StEc,
    annotation_cost,
    load_table,
    select,
)


def _pool(n=50, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "id": [f"u{i:03d}" for i in rng.permutation(n)],
        "sf.ec": rng.random(n),
        "id.ec": rng.random(n),
        "sf.da": rng.random(n),
        "id.da": rng.random(n),
        "n_tokens": rng.integers(3, 20, n),
        "sf.n_entities": rng.integers(0, 4, n),
    }


def _kwargs(method):
    if method.startswith("st-") or method in ("mt-ec", "mt-da", "blp-stcs"):
        return {"task": "sf"}
    return {}


def test_accepts_arrow_parquet_and_columns(tmp_path):
    cols = _pool()
    table = pa.table(cols)
    path = tmp_path / "conf.parquet"
    pq.write_table(table, path)
    ids = {tuple(select(src, "mt-par", n=7).ids) for src in (cols, table, path, str(path))}
    assert len(ids) == 1


def test_cost_model_defaults_follow_the_paper():
    ct = load_table(
        {"id": ["a"], "sf.ec": [0.5], "id.ec": [0.5], "n_tokens": [10], "sf.n_entities": [2]}
    )
    c = CostModel().costs(ct)
    assert c.task("sf").tolist() == [12.0] and c.task("id").tolist() == [13.0]
    assert c.joint.tolist() == [15.0]  # 12 + 13 - 10
    assert annotation_cost(ct, {"a": ["id"]}) == 13.0
    c = CostModel(tp=2, ts=1, task_costs={"id": lambda cols: cols["n_tokens"] + 7}).costs(ct)
    assert c.task("sf").tolist() == [14.0] and c.task("id").tolist() == [17.0]


def test_table_costs_and_joint_cost_are_honoured_for_three_tasks():
    ct = load_table(
        {
            "id": ["a"],
            "x.ec": [0.5],
            "y.ec": [0.5],
            "z.ec": [0.5],
            "x.cost": [5],
            "y.cost": [6],
            "z.cost": [7],
            "joint.cost": [12],
        }
    )
    c = CostModel().costs(ct)
    assert c.shared.tolist() == [3.0]  # (18 - 12) / 2
    assert c.joint.tolist() == [12.0]
    assert c.subset(np.array([[True, True, False]])).tolist() == [8.0]  # 5 + 6 - 3


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(sorted(METHODS)), st.integers(0, 1000), st.data())
def test_every_method_returns_unique_pool_ids(method, seed, data):
    cols = _pool(30, seed)
    kw = _kwargs(method)
    if method.startswith("blp-") or data.draw(st.booleans()):
        budget = data.draw(st.floats(40, 300))
        request = {"budget": budget}
    else:
        request = {"n": data.draw(st.integers(1, 30))}
    r = select(cols, method, seed=seed, **request, **kw)
    assert len(set(r.ids)) == len(r.ids) and set(r.ids) <= set(cols["id"])
    if "n" in request:
        assert len(r.ids) == request["n"]
    else:
        assert r.cost <= request["budget"] + 1e-9
    # the same request on the rows in another order gives the same selection
    shuffled = {k: v[::-1] for k, v in cols.items()}
    assert select(shuffled, method, seed=seed, **request, **kw).ids == r.ids


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "mt-foo", "n": 3}, "unknown selection method"),
        ({"method": "mt-avg", "n": 0}, "positive integer"),
        ({"method": "mt-avg", "n": 51}, "exceeds the pool size 50"),
        ({"method": "mt-avg"}, "exactly one of n and budget"),
        ({"method": "mt-avg", "n": 3, "budget": 5}, "exactly one of n and budget"),
        ({"method": "mt-avg", "budget": 1.0}, "below the cheapest"),
        ({"method": "mt-avg", "n": 3, "beta": 1.5, "task": "sf"}, "beta must lie in [0, 1]"),
        ({"method": "mt-avg", "n": 3, "beta": 0.5}, "beta needs task"),
        ({"method": "mt-avg", "n": 3, "task": "sf"}, "without beta"),
        ({"method": "mt-avg", "n": 3, "beta": 0.5, "task": "re"}, "unknown task 're'"),
        ({"method": "mt-ec", "n": 3}, "needs a task"),
        ({"method": "st-ec", "n": 3, "task": "ner"}, "unknown task 'ner'"),
        ({"method": "mt-max", "n": 3, "beta": 0.3, "task": "sf"}, "does not take beta"),
        ({"method": "blp-udjs", "n": 3}, "give budget, not n"),
        ({"method": "mt-avg", "n": 3, "weights": {"sf": -1.0}}, "non-negative"),
    ],
)
def test_bad_requests_raise_clear_errors(kwargs, message):
    with pytest.raises(SelectionError, match=message.replace("[", r"\[").replace("]", r"\]")):
        select(_pool(), **kwargs)


def test_bad_tables_raise_clear_errors():
    good = _pool(5)
    with pytest.raises(SelectionError, match="missing column 'id'"):
        load_table({k: v for k, v in good.items() if k != "id"})
    with pytest.raises(SelectionError, match=r"no '<task>\.ec'.*mt-avg reads confidences"):
        select({"id": good["id"]}, "mt-avg", n=2)  # loads (MT-R selects from it); refused
    with pytest.raises(SelectionError, match="NaN"):
        load_table(dict(good, **{"sf.ec": [0.1, np.nan, 0.2, 0.3, 0.4]}))
    with pytest.raises(SelectionError, match=r"must lie in \[0, 1\]"):
        load_table(dict(good, **{"sf.ec": [0.1, 1.2, 0.2, 0.3, 0.4]}))
    with pytest.raises(SelectionError, match="duplicate id 'u001'"):
        load_table(dict(good, id=["u001", "u001", "u002", "u003", "u004"]))
    with pytest.raises(EmptyPoolError):
        load_table({"id": pa.array([], pa.string()), "sf.ec": pa.array([], pa.float64())})
    with pytest.raises(SelectionError, match=r"missing column 'sf\.da'"):
        select({k: v for k, v in good.items() if k != "sf.da"}, "mt-da", n=2, task="sf")
    with pytest.raises(SelectionError, match=r"'joint\.cost' or 'n_tokens'"):
        select(
            {"id": ["a"], "x.ec": [0.1], "y.ec": [0.2], "x.cost": [1], "y.cost": [1]},
            "mt-avg",
            budget=5,
        )


def test_random_methods_select_from_a_table_without_confidences():
    """The AL loop skips scoring for MT-R / ST-R: ``id`` + ``n_tokens``, tasks in metadata."""
    ids = [f"u{i:02d}" for i in range(20)]
    lengths = pa.array(range(1, 21), pa.int32())
    bare = pa.table({"id": ids, "n_tokens": lengths}).replace_schema_metadata(
        {"mtal_ray.tasks": '["sf", "id"]', "mtal_ray.token_tasks": '["sf"]'}
    )
    ct = load_table(bare)
    assert ct.tasks == ("sf", "id") and ct.token_tasks == ("sf",) and not ct.has_confidence
    scored = pa.table({"id": ids, "n_tokens": lengths, "sf.ec": [0.5] * 20, "id.ec": [0.5] * 20})
    # MT-R's order depends on the ids and its seed only, not on confidence columns
    assert MtR(seed=3).select(bare, n=5).ids == MtR(seed=3).select(scored, n=5).ids
    assert select(bare, "st-r", n=3, task="id").tasks == {
        i: ["id"] for i in select(scored, "st-r", n=3, task="id").ids
    }
    assert MtR().select({"id": ids}, n=4).tasks is None  # no tasks named: every task
    with pytest.raises(SelectionError, match=r"no '<task>\.ec' confidence column"):
        MtAvg().select(bare, n=2)
    # costs: a sentence-level task from n_tokens; a span task needs the predicted entities
    assert annotation_cost(bare, {"u00": ["id"], "u01": ["id"]}) == (1 + 3) + (2 + 3)
    with pytest.raises(SelectionError, match=r"no 'sf\.n_entities' column"):
        annotation_cost(bare, {"u00": ["sf", "id"]})
    with pytest.raises(SelectionError, match=r"no 'sf\.n_entities' column"):
        MtR().select(bare, budget=10)
    with pytest.raises(SelectionError, match="names no task"):
        MtR().select({"id": ids, "n_tokens": list(range(20))}, budget=10)


def test_result_json_keys():
    r = select(_pool(), "blp-udjs", budget=60)
    d = json.loads(r.to_json())
    assert set(d) == {"method", "ids", "tasks", "objective", "cost", "gap"}
    d = json.loads(select(_pool(), "mt-par", n=3).to_json())
    assert set(d) == {"method", "ids"}


def test_config_section():
    cfg = SelectionConfig(method="mt-par", n=20, beta=0.7, task="sf")
    assert repr(cfg.selector()) == "MtPar(beta=0.7, task='sf')"
    assert (
        cfg.selector().select(_pool(), n=cfg.n).ids
        == select(_pool(), "mt-par", n=20, beta=0.7, task="sf").ids
    )
    assert repr(SelectionConfig(method="blp-udjs", budget=500).selector()) == "BlpUdjs()"
    # Neither n nor budget: the AL driver picks the round size (the initial set's size).
    assert SelectionConfig(method="mt-avg").n is None
    for bad in (
        {"method": "nope", "n": 3},
        {"method": "mt-avg", "n": 3, "budget": 5.0},
        {"method": "mt-avg", "n": 1, "bogus": 1},
        {"method": "blp-udjs", "n": 3},
        {"method": "mt-avg", "n": 3, "beta": 2.0},
    ):
        with pytest.raises(ValidationError):
            SelectionConfig(**bad)


def test_cli_writes_json_and_reports_user_errors(tmp_path, capsys):
    import argparse

    path = tmp_path / "conf.parquet"
    pq.write_table(pa.table(_pool()), path)
    parser = argparse.ArgumentParser()
    select_command.register(parser.add_subparsers())
    out = tmp_path / "sel.json"
    args = parser.parse_args(
        [
            "select",
            "--input",
            str(path),
            "--method",
            "mt-par",
            "--n",
            "5",
            "--beta",
            "0.7",
            "--task",
            "sf",
            "--output",
            str(out),
        ]
    )
    assert args.func(args) == 0
    data = json.loads(out.read_text())
    assert data["method"] == "mt-par" and len(data["ids"]) == 5
    assert data["selector"] == "MtPar(beta=0.7, task='sf')"
    args = parser.parse_args(
        [
            "select",
            "--input",
            str(path),
            "--method",
            "blp-udjs",
            "--budget",
            "80",
            "--output",
            str(out),
        ]
    )
    args.func(args)
    assert json.loads(out.read_text())["cost"] <= 80
    args = parser.parse_args(
        [
            "select",
            "--input",
            str(path),
            "--method",
            "mt-avg",
            "--weights",
            "sf=0.7,id=0.3",
            "--n",
            "3",
            "--output",
            str(out),
        ]
    )
    args.func(args)


def test_cli_main_exits_2_with_one_line(tmp_path, capsys):
    from mtal_ray import cli

    path = tmp_path / "conf.parquet"
    pq.write_table(pa.table(_pool()), path)
    code = cli.main(
        [
            "select",
            "--input",
            str(path),
            "--method",
            "mt-avg",
            "--n",
            "999",
            "--output",
            str(tmp_path / "x.json"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and err.startswith("error: ")
    assert "exceeds the pool size 50" in err
    assert not (tmp_path / "x.json").exists()


def test_what_a_method_accepts_comes_from_its_selector_fields():
    from mtal_ray.selection import make_selector
    from mtal_ray.selection.registry import method_entry

    weighted = {"weights", "beta", "task"}
    assert weighted <= method_entry("mt-avg").accepts()
    assert method_entry("mt-rrf").accepts() == weighted | {"k"}
    assert method_entry("mt-r").accepts() == {"seed"}
    assert method_entry("st-r").accepts() == {"seed", "task"}
    assert method_entry("mt-max").accepts() == frozenset()
    assert method_entry("mt-ec").accepts() == {"task"}
    assert method_entry("blp-udjs").accepts() == {"time_limit", "mip_gap"}
    assert method_entry("blp-joint-avg").accepts() == weighted | {"time_limit", "mip_gap"}
    assert method_entry("blp-joint-max").accepts() == {"time_limit", "mip_gap"}
    assert method_entry("blp-stcs").accepts() == {"task", "time_limit", "mip_gap"}
    # seed is the request-wide seed: methods without one ignore it; anything else is refused
    assert repr(make_selector("mt-max", seed=3)) == "MtMax()"
    assert repr(make_selector("mt-rrf", k=10)) == "MtRrf(k=10)"
    assert repr(make_selector("blp-joint-min")) == "BlpJoint(aggregate='min')"
    with pytest.raises(SelectionError, match="method blp-joint-max does not take beta, task"):
        make_selector("blp-joint-max", beta=0.5, task="sf")
    with pytest.raises(SelectionError, match="method mt-avg does not take time_limit"):
        make_selector("mt-avg", time_limit=5.0)


def test_selectors_say_what_they_need():
    from mtal_ray.selection.registry import method_entry

    da = {m for m in METHODS if method_entry(m).needs_mc_dropout}
    assert da == {"st-da", "mt-da", "mt-avgda"}
    assert {m for m in METHODS if not method_entry(m).needs_confidence} == {"st-r", "mt-r"}
    assert {m for m in METHODS if method_entry(m).budgeted} == {
        m for m in METHODS if m.startswith("blp-")
    }
    assert StDa(task="sf").needs_mc_dropout and not MtAvg().needs_mc_dropout
    assert BlpUdjs().budgeted and not MtPar().budgeted and not MtR().needs_confidence
    assert SelectionConfig(method="mt-avgda").entry.needs_mc_dropout


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"beta": 0.5}, "beta needs task"),
        ({"task": "sf"}, "'sf' given without beta"),
        ({"beta": 0.5, "weights": {"sf": 1.0}}, "either weights or beta"),
        ({"weights": {"sf": 0.0}}, "positive sum"),
    ],
)
def test_weighted_selectors_refuse_bad_parameters_when_built(kwargs, message):
    from mtal_ray.selection.base import ParameterError

    with pytest.raises(ParameterError, match=message) as info:
        MtPar(**kwargs)
    assert set(info.value.params) <= {"weights", "beta", "task"}
    assert info.value.render("selection.").count("selection.") >= 1
    with pytest.raises(SelectionError, match="needs a task"):
        StEc()


def test_parameter_errors_pickle_with_their_parameters():
    import pickle

    from mtal_ray.selection.base import ParameterError

    err = ParameterError("{beta} needs {task}", "beta", "task")
    back = pickle.loads(pickle.dumps(err))
    assert str(back) == "beta needs task" and back.render("s.") == "s.beta needs s.task"
