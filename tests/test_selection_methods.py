"""Count-based and greedy-budget selection methods against hand-worked examples."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtal_ray.selection import (
    MtAvg,
    MtAvgDa,
    MtDa,
    MtEc,
    MtInd,
    MtMax,
    MtMin,
    MtPar,
    MtR,
    MtRrf,
    StEc,
    StR,
    select,
)
from mtal_ray.selection.mt_par import dominance_factors
from mtal_ray.selection.ranking import competition_ranks, greedy_fill, smallest

# Five samples, two tasks; rows deliberately not in id order.
TABLE = {
    "id": ["e", "a", "d", "b", "c"],
    "dp.ec": [0.9, 0.1, 0.5, 0.4, 0.2],
    "ner.ec": [0.1, 0.8, 0.3, 0.6, 0.7],
    "dp.da": [0.2, 0.9, 0.4, 0.1, 0.3],
    "ner.da": [0.2, 0.5, 0.6, 0.3, 0.8],
}
# by id: a=(.1,.8) b=(.4,.6) c=(.2,.7) d=(.5,.3) e=(.9,.1)


def test_single_task_confidence_orders_least_confident_first():
    assert MtEc(task="dp").select(TABLE, n=3).ids == ["a", "c", "b"]
    assert MtEc(task="ner").select(TABLE, n=2).ids == ["e", "d"]
    assert MtDa(task="dp").select(TABLE, n=2).ids == ["b", "e"]
    st = StEc(task="dp").select(TABLE, n=2)
    assert st.ids == ["a", "c"] and st.tasks == {"a": ["dp"], "c": ["dp"]}
    assert MtEc(task="dp").select(TABLE, n=2).tasks is None


def test_aggregates_hand_worked():
    # means: a .45 b .5 c .45 d .4 e .5 (a and c differ in the last float bit)
    assert MtAvg().select(TABLE, n=1).ids == ["d"]
    assert MtAvg().select(TABLE, n=5).ids[3:] == ["b", "e"]
    # exactly representable ties are broken by id whatever the row order
    dyadic = {"id": ["z", "y", "x"], "p.ec": [0.25, 0.75, 0.5], "q.ec": [0.75, 0.25, 0.5]}
    assert MtAvg().select(dyadic, n=3).ids == ["x", "y", "z"]
    # max: a .8 b .6 c .7 d .5 e .9
    assert MtMax().select(TABLE, n=3).ids == ["d", "b", "c"]
    # min: a .1 b .4 c .2 d .3 e .1 -> a/e tie by id
    assert MtMin().select(TABLE, n=3).ids == ["a", "e", "c"]
    # mean DA: a .7 b .2 c .55 d .5 e .2 -> b/e tie by id
    assert MtAvgDa().select(TABLE, n=3).ids == ["b", "e", "d"]


def test_weighted_avg_uses_beta_on_named_task():
    # 0.9*dp + 0.1*ner: a .17 b .42 c .25 d .48 e .82
    assert MtAvg(beta=0.9, task="dp").select(TABLE, n=3).ids == ["a", "c", "b"]
    assert MtAvg(weights={"dp": 0.9, "ner": 0.1}).select(TABLE, n=3).ids == ["a", "c", "b"]


def test_rrf_hand_worked():
    # dp ranks a1 c2 b3 d4 e5; ner ranks e1 d2 b3 c4 a5.
    k = 60
    fused = {
        "a": 1 / (k + 1) + 1 / (k + 5),
        "b": 2 / (k + 3),
        "c": 1 / (k + 2) + 1 / (k + 4),
        "d": 1 / (k + 4) + 1 / (k + 2),
        "e": 1 / (k + 5) + 1 / (k + 1),
    }
    expected = sorted(fused, key=lambda i: (-round(fused[i], 12), i))
    assert MtRrf().select(TABLE, n=5).ids == expected == ["a", "e", "c", "d", "b"]
    # all weight on ner: its ranking
    assert MtRrf(beta=1.0, task="ner").select(TABLE, n=3).ids == ["e", "d", "b"]


def test_competition_ranks_share_ties():
    assert competition_ranks(np.array([0.3, 0.1, 0.3, 0.2])).tolist() == [3, 1, 3, 2]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=1, max_size=300))
def test_competition_ranks_count_the_smaller_values(levels):  # type: ignore[no-untyped-def]
    """1 + the number of strictly smaller values, for inputs full of ties (the sort inside
    is not stable; the ranks must not depend on it)."""
    values = np.asarray(levels, dtype=np.float64) / 7
    expected = [1 + int((values < v).sum()) for v in values]
    assert competition_ranks(values).tolist() == expected


def test_ind_interleaves_tasks_and_skips_overlaps():
    # dp walk: a c b d e; ner walk: e d b c a; alternate dp, ner, dp, ner...
    assert MtInd().select(TABLE, n=4).ids == ["a", "e", "c", "d"]
    # overlap: after a,e,c,d the dp walk reaches b (new), ner would reach b too
    assert MtInd().select(TABLE, n=5).ids == ["a", "e", "c", "d", "b"]
    # beta = 1 on dp: only dp's ranking
    assert MtInd(beta=1.0, task="dp").select(TABLE, n=3).ids == ["a", "c", "b"]


def test_ind_overlap_counts_depth_not_picks():
    t = {"id": list("abcd"), "x.ec": [0.1, 0.2, 0.3, 0.4], "y.ec": [0.1, 0.3, 0.2, 0.4]}
    # x: a b c d ; y: a c b d. Step 1 x->a, step 1 y->a (taken, skipped),
    # step 2 x->b, step 2 y->c.
    assert MtInd().select(t, n=3).ids == ["a", "b", "c"]


def test_ind_weighted_fraction():
    rng = np.random.default_rng(3)
    n = 400
    t = {"id": [f"{i:03d}" for i in range(n)], "re.ec": rng.random(n), "ner.ec": rng.random(n)}
    sel = MtInd(beta=0.8, task="re").select(t, n=50).ids
    top_re = {f"{i:03d}" for i in np.argsort(t["re.ec"])[:40]}
    top_ner = {f"{i:03d}" for i in np.argsort(t["ner.ec"])[:10]}
    assert len(set(sel) & top_re) >= 38 and len(set(sel) & top_ner) >= 8


@settings(max_examples=200, deadline=None)
@given(
    ec=st.lists(
        st.tuples(*(st.sampled_from([0.1, 0.2, 0.3, 0.5, 0.9]),) * 3), min_size=1, max_size=40
    ),
    weights=st.tuples(*(st.sampled_from([0.0, 0.1, 0.25, 0.5, 1.0]),) * 3),
    k=st.integers(1, 45),
)
def test_ind_top_k_keys_are_the_full_keys_of_every_row_that_can_be_selected(ec, weights, k):
    """The top-k shortcut keeps every row whose key is at most K = k / max w (the k-th
    smallest key is), with the full computation's key and first task; the other rows it
    keeps get keys above K, as their full keys are."""
    from mtal_ray.selection.mt_ind import independent_keys, top_independent_keys

    matrix, w = np.array(ec, dtype=np.float64), np.array(weights)
    if w.max() <= 0:
        return
    key, first = independent_keys(matrix, w)
    rows, top_key, top_first = top_independent_keys(matrix, w, k)
    assert (np.diff(rows) > 0).all()
    bound = k / w.max()
    assert set(np.flatnonzero(key <= bound)) <= set(rows.tolist())
    exact = key[rows] <= bound
    assert np.array_equal(top_key[exact], key[rows][exact])
    assert np.array_equal(top_first[exact], first[rows][exact])
    assert (top_key[~exact] > bound).all()
    # and the selection is the head of the full ranking (the method's own, k >= n path)
    ids = [f"{i:02d}" for i in range(matrix.shape[0])]
    table = {"id": ids, **{f"t{j}.ec": matrix[:, j] for j in range(3)}}
    method = MtInd(weights={f"t{j}": float(w[j]) for j in range(3)})
    n = min(k, len(ids))
    assert method.select(table, n=n).ids == method.select(table, n=len(ids)).ids[:n]


def test_par_frontiers_and_thinning():
    # every point of TABLE is on the first frontier (anti-correlated)
    assert MtPar().select(TABLE, n=5).ids == ["a", "c", "b", "d", "e"]
    # f=5, p=2: every 2nd point by dp: a, b
    assert MtPar().select(TABLE, n=2).ids == ["a", "b"]
    # p=3 -> step 1: the first three by dp
    assert MtPar().select(TABLE, n=3).ids == ["a", "c", "b"]


def test_par_takes_whole_frontiers_then_thins_the_next():
    t = {
        "id": list("pqrstu"),
        "x.ec": [0.1, 0.2, 0.5, 0.6, 0.7, 0.9],
        "y.ec": [0.2, 0.1, 0.5, 0.4, 0.3, 0.9],
    }
    # layer 1: p, q; layer 2: r, s, t (by x); layer 3: u
    assert MtPar().select(t, n=2).ids == ["p", "q"]
    assert MtPar().select(t, n=3).ids == ["p", "q", "r"]
    assert MtPar().select(t, n=4).ids == ["p", "q", "r", "s"]  # step ⌊3/2⌋ = 1
    assert MtPar().select(t, n=6).ids == ["p", "q", "r", "s", "t", "u"]


def test_par_weighted_restriction_follows_paper():
    ec = np.array([[0.1, 0.9], [0.5, 0.5], [0.9, 0.1], [0.3, 0.7]])
    # beta=0.2 on task 0 (< 0.5): task 0 restricted by its 0.2-quantile
    f = dominance_factors(ec, np.array([0.2, 0.8]))
    assert f[1] == 1.0 and f[0] == pytest.approx(np.quantile(ec[:, 0], 0.2))
    assert np.array_equal(dominance_factors(ec, np.array([0.5, 0.5])), [1.0, 1.0])
    # beta=0.8 on task 0: the *other* task is restricted by its 0.2-quantile
    f = dominance_factors(ec, np.array([0.8, 0.2]))
    assert f[0] == 1.0 and f[1] == pytest.approx(np.quantile(ec[:, 1], 0.2))


def test_par_weighted_keeps_more_points_on_frontier():
    t = {"id": list("abc"), "re.ec": [0.2, 0.3, 0.9], "ner.ec": [0.2, 0.3, 0.9]}
    # plain: a dominates b and c -> 3 layers; a strongly restricted re axis: b is
    # dominated by a only if 0.2 <= q*0.3
    assert MtPar().select(t, n=1).ids == ["a"]
    weighted = MtPar(beta=0.0, task="re")  # q = 0-quantile of re = 0.2
    assert weighted.select(t, n=2).ids == ["a", "b"]  # b now on frontier 1 with a
    assert MtPar(beta=0.0, task="re").select(t, n=3).ids == [
        "a",
        "b",
        "c",
    ]  # 0.2 <= 0.2*0.9 is false too


def test_random_is_seeded_and_independent_of_row_order():
    rev = {k: v[::-1] for k, v in TABLE.items()}
    a = MtR(seed=7).select(TABLE, n=5).ids
    assert a == MtR(seed=7).select(rev, n=5).ids
    assert sorted(a) == list("abcde")
    runs = {tuple(MtR(seed=s).select(TABLE, n=5).ids) for s in range(10)}
    assert len(runs) > 1
    st = StR(task="ner", seed=7).select(TABLE, n=2)
    assert st.ids == a[:2] and st.tasks == {i: ["ner"] for i in a[:2]}


def test_smallest_matches_stable_argsort():
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 20, 1000).astype(float)
    for k in (1, 5, 100, 999):
        assert smallest(keys, k).tolist() == np.argsort(keys, kind="stable")[:k].tolist()


def test_greedy_fill_skips_what_does_not_fit():
    order = np.array([0, 1, 2, 3])
    costs = np.array([4.0, 5.0, 1.0, 2.0])
    taken, spent = greedy_fill(order, costs, 7.0)
    assert taken.tolist() == [0, 2, 3] and spent == 7.0


def test_budget_greedy_uses_joint_costs_in_priority_order():
    t = dict(TABLE, **{"n_tokens": [4, 4, 4, 4, 4], "ner.n_entities": [0, 2, 1, 0, 0]})
    # dp sentence-level: 4+3=7; ner token-level: 4+ents; joint = 7 + ner - 4
    # joint: e 7, a 9, d 8, b 7, c 7.  MT-EC(dp) order: a c b d e
    r = MtEc(task="dp").select(t, budget=20)
    assert r.ids == ["a", "c"] and r.cost == 16.0  # b (7) would exceed 20
    r = MtEc(task="dp").select(t, budget=24)
    assert r.ids == ["a", "c", "b"] and r.cost == 23.0
    r = MtEc(task="ner").select(t, budget=15)  # ner order e d b c a: e 7, d 8
    assert r.ids == ["e", "d"] and r.cost == 15.0
    # single-task: dp costs 7 each
    r = StEc(task="dp").select(t, budget=21)
    assert r.ids == ["a", "c", "b"] and r.cost == 21.0


def test_budget_greedy_par_looks_past_its_first_guess():
    rng = np.random.default_rng(1)
    n = 300
    t = {
        "id": [f"{i:03d}" for i in range(n)],
        "a.ec": rng.random(n),
        "b.ec": rng.random(n),
        "a.cost": np.where(np.arange(n) < 280, 100.0, 1.0),
        "b.cost": np.where(np.arange(n) < 280, 100.0, 1.0),
        "joint.cost": np.where(np.arange(n) < 280, 150.0, 1.5),
    }
    r = MtPar().select(t, budget=160)
    # one expensive sample at most, then every cheap one fits: greedy must reach them
    assert r.cost <= 160 and len(r.ids) >= 6


def test_select_entry_point_names_and_repr():
    r = select(TABLE, "mt-par", n=2, beta=0.7, task="dp")
    assert r.method == "MtPar(beta=0.7, task='dp')"
    assert repr(MtRrf(weights={"dp": 1.0})) == "MtRrf(weights={'dp': 1.0})"
