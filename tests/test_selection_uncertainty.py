"""selection.uncertainty: a sentence's EC as the mean (the paper) or the total over its
positions — hand-worked tables, the ordering rule for all inputs, and the loop using it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_driver_loop import _config, _loop

from mtal_ray.config import load_config
from mtal_ray.errors import ConfigError, SelectionError
from mtal_ray.selection import load_table
from mtal_ray.selection.registry import select
from mtal_ray.selection.uncertainty import total_uncertainty, with_aggregate


def _table(**columns):
    n = len(next(iter(columns.values())))
    return load_table({"id": [f"s{i:03d}" for i in range(n)], **columns})  # id order = row order


def test_total_multiplies_the_mean_entropy_by_the_positions_over_the_largest_count():
    table = _table(**{"sf.ec": [0.9, 0.5, 0.8], "id.ec": [0.3, 0.6, 0.9], "n_tokens": [10, 2, 20]})
    out = total_uncertainty(table)
    # 1 − (1 − ec)·m/20: 1 − 0.1·0.5, 1 − 0.5·0.1, 1 − 0.2·1
    assert out.ec("sf") == pytest.approx([0.95, 0.95, 0.8])
    assert out.ec("id") == pytest.approx([0.3, 0.6, 0.9])  # one position: unchanged
    assert table.ec("sf") == pytest.approx([0.9, 0.5, 0.8])  # the input is not changed
    assert with_aggregate(table, "mean") is table


def test_relations_count_their_scored_pairs():
    table = _table(**{"ner.ec": [0.5, 0.5], "re.ec": [0.5, 1.0], "n_tokens": [4, 4]})
    with pytest.raises(SelectionError, match=r"needs the 're.n_pairs' column for 're'"):
        total_uncertainty(table)
    table = _table(
        **{"ner.ec": [0.5, 0.5], "re.ec": [0.5, 1.0], "re.n_pairs": [2, 0], "n_tokens": [4, 4]}
    )
    assert total_uncertainty(table).ec("re") == pytest.approx([0.5, 1.0])


@given(st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(1, 60)), min_size=1, max_size=40))
def test_total_orders_the_pool_as_the_summed_entropy_does(rows):
    ec = np.array([r[0] for r in rows])
    m = np.array([r[1] for r in rows], dtype=float)
    out = total_uncertainty(_table(**{"sf.ec": ec, "n_tokens": m})).ec("sf")
    assert np.all((out >= 0) & (out <= 1))
    total = (1 - ec) * m
    for i in range(len(rows)):
        for j in range(len(rows)):
            if total[i] > total[j] + 1e-9:
                assert out[i] < out[j]  # more total entropy: less confident


def test_select_with_total_prefers_the_long_unsure_sentence():
    table = {"id": ["short", "long"], "sf.ec": [0.4, 0.6], "n_tokens": [2, 30]}
    assert select(table, "st-ec", n=1, task="sf").ids == ["short"]  # the paper's mean
    assert select(table, "st-ec", n=1, task="sf", uncertainty="total").ids == ["long"]


def test_config_takes_mean_or_total():
    assert load_config(None, []).selection.uncertainty == "mean"
    assert load_config(None, ["selection.uncertainty=total"]).selection.uncertainty == "total"
    with pytest.raises(ConfigError, match=r"selection\.uncertainty"):
        load_config(None, ["selection.uncertainty=median"])


def test_the_loop_selects_on_the_total(tmp_path):
    run_dir = tmp_path / "run"
    config = _config("selection.uncertainty=total", "selection.method=mt-rrf")
    _loop(run_dir, config).run()
    round_dir = run_dir / "rounds" / "round_0"
    chosen = json.loads((round_dir / "selection.json").read_text())["ids"]
    tables = sorted(round_dir.glob("*.parquet"))
    confidences = next(p for p in tables if "confid" in p.name)
    expected = select(confidences, "mt-rrf", n=len(chosen), uncertainty="total").ids
    assert chosen == expected
    assert chosen != select(confidences, "mt-rrf", n=len(chosen)).ids  # it changed the pick


def test_total_is_refused_where_it_would_change_nothing_or_cannot_know_the_positions():
    with pytest.raises(ConfigError, match=r"selection\.uncertainty.*dropout agreement"):
        load_config(
            None, ["selection.method=mt-da", "selection.task=sf", "selection.uncertainty=total"]
        )
    table = {"id": ["a", "b"], "sf.ec": [0.4, 0.6], "sf.da": [0.5, 0.9], "n_tokens": [2, 30]}
    with pytest.raises(SelectionError, match="ranks by dropout agreement"):
        select(table, "st-da", n=1, task="sf", uncertainty="total")
    odd = _table(**{"xyz.ec": [0.4, 0.6], "n_tokens": [2, 30]})
    with pytest.raises(SelectionError, match="what the positions of 'xyz' are"):
        total_uncertainty(odd)
    with pytest.raises(SelectionError, match="unknown uncertainty aggregate 'median'"):
        with_aggregate(_table(**{"n_tokens": [1, 2]}), "median")
