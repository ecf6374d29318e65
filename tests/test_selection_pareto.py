"""Pareto layers against the O(n²) reference peeling."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mtal_ray.selection.pareto import (
    dominates,
    pareto_layers,
    pareto_layers_reference,
    thin,
)


def _brute_layers(points, factors):
    """Layers straight from the definition: layer = 1 + longest dominating chain."""
    n = len(points)
    layer = [0] * n
    order = sorted(range(n), key=lambda i: points[i].sum())
    for i in order:  # dominators have a strictly smaller sum
        for j in range(n):
            if dominates(points[j], points[i], factors):
                layer[i] = max(layer[i], layer[j] + 1)
    out = []
    for k in range(max(layer) + 1 if n else 0):
        out.append([i for i in range(n) if layer[i] == k])
    return out


def test_reference_matches_definition_on_a_hand_example():
    pts = np.array([[0.1, 0.9], [0.2, 0.2], [0.3, 0.1], [0.5, 0.5], [0.2, 0.2], [0.9, 0.9]])
    layers = [x.tolist() for x in pareto_layers_reference(pts)]
    assert layers == [[0, 1, 2, 4], [3], [5]]  # duplicates share a layer
    assert [x.tolist() for x in pareto_layers(pts)] == layers


point_sets = st.integers(2, 4).flatmap(
    lambda t: st.tuples(
        arrays(
            np.float64,
            st.tuples(st.integers(1, 40), st.just(t)),
            elements=st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0, 0.3, 0.6]),
        ),
        arrays(np.float64, st.just(t), elements=st.sampled_from([1.0, 1.0, 0.5, 0.8, 0.0])),
    )
)


@settings(max_examples=150, deadline=None)
@given(point_sets, st.integers(1, 45))
def test_layers_match_reference_and_brute_force(data, limit):
    pts, factors = data
    ref = pareto_layers_reference(pts, factors)
    assert [x.tolist() for x in ref] == _brute_layers(pts, factors)
    full = pareto_layers(pts, None, factors)
    assert [x.tolist() for x in full] == [x.tolist() for x in ref]
    part = pareto_layers(pts, limit, factors)
    sizes = np.cumsum([len(x) for x in ref])
    expected = min(int(np.searchsorted(sizes, limit)) + 1, len(ref))
    assert [x.tolist() for x in part] == [x.tolist() for x in ref[:expected]]


def test_filtered_layers_on_a_large_pool_match_reference():
    rng = np.random.default_rng(0)
    pts = np.round(rng.random((600, 2)), 2)  # many ties
    ref = pareto_layers_reference(pts)
    got = pareto_layers(pts, 60)
    assert [x.tolist() for x in got] == [x.tolist() for x in ref[: len(got)]]
    assert sum(map(len, got)) >= 60 > sum(map(len, got[:-1]))
    f = np.array([1.0, 0.6])
    ref = pareto_layers_reference(pts, f)
    got = pareto_layers(pts, 90, f)
    assert [x.tolist() for x in got] == [x.tolist() for x in ref[: len(got)]]


def test_thin_takes_every_floor_f_over_p_th():
    assert thin(np.arange(10), 3).tolist() == [0, 3, 6]
    assert thin(np.arange(7), 2).tolist() == [0, 3]
    assert thin(np.arange(5), 5).tolist() == [0, 1, 2, 3, 4]
