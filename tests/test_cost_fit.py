"""The paper's cost formula (§7) fitted to measured annotation times (issue 19, item 3)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mtal_ray.errors import SelectionError
from mtal_ray.selection.cost import CostModel
from mtal_ray.selection.cost_fit import (
    FittedCosts,
    TimedSentence,
    fit_costs,
    nonnegative_least_squares,
)
from mtal_ray.selection.table import load_table

KINDS = {"sf": "token", "id": "sentence"}


def _brute_force_nnls(a: np.ndarray, b: np.ndarray) -> float:
    """The least residual over every support set whose unconstrained fit is feasible."""
    best = float(np.sum(b**2))  # x = 0
    for k in range(1, a.shape[1] + 1):
        for support in itertools.combinations(range(a.shape[1]), k):
            x = np.linalg.lstsq(a[:, support], b, rcond=None)[0]
            if (x >= -1e-12).all():
                best = min(best, float(np.sum((a[:, support] @ x - b) ** 2)))
    return best


# Design matrices of integers (counts of words and labels are integers) keep every
# sub-problem's conditioning bounded, so the brute-force optimum is a fair yardstick; how
# far a column's scale may wander is the next test's business.
_COUNTS = arrays(np.float64, (6, 3), elements=st.integers(-20, 20).map(float))
_TIMES = arrays(np.float64, (6,), elements=st.floats(-5, 5, allow_subnormal=False))


@settings(deadline=None, max_examples=300)  # a loaded CI machine must not fail on time
@given(_COUNTS, _TIMES)
def test_nnls_matches_brute_force(a: np.ndarray, b: np.ndarray) -> None:
    x = nonnegative_least_squares(a, b)
    assert (x >= 0).all()
    residual = float(np.sum((a @ x - b) ** 2))
    assert residual <= _brute_force_nnls(a, b) + 1e-6 * (1 + residual)


@settings(deadline=None)
@given(_COUNTS, _TIMES, st.lists(st.integers(-150, 150), min_size=3, max_size=3))
def test_nnls_does_not_depend_on_the_columns_scale(
    a: np.ndarray, b: np.ndarray, exponents: list[int]
) -> None:
    scale = 10.0 ** np.array(exponents, dtype=float)
    x = nonnegative_least_squares(a, b)
    x_scaled = nonnegative_least_squares(a * scale, b)
    residual = float(np.sum((a @ x - b) ** 2))
    residual_scaled = float(np.sum(((a * scale) @ x_scaled - b) ** 2))
    assert residual_scaled == pytest.approx(residual, rel=1e-6, abs=1e-9)


def test_nnls_known_answer() -> None:
    # unconstrained optimum (1, -1) is infeasible; with x2 = 0 the best x1 is 0.5
    a = np.array([[1.0, 1.0], [1.0, 0.0]])
    b = np.array([0.0, 1.0])
    np.testing.assert_allclose(nonnegative_least_squares(a, b), [0.5, 0.0], atol=1e-12)


def _sentences(w: float, per_label: dict[str, float], noise: float = 0.0) -> list[TimedSentence]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(40):
        m = int(rng.integers(3, 25))
        tasks = [["sf", "id"], ["sf"], ["id"]][i % 3]
        labels = {"sf": int(rng.integers(0, 5)), "id": 1}
        labels = {t: labels[t] for t in tasks}
        seconds = w * m + sum(
            per_label[t] * (labels[t] if KINDS[t] == "token" else 1) for t in tasks
        )
        out.append(TimedSentence(m, labels, seconds + noise * float(rng.normal())))
    return out


def test_noise_free_times_give_back_the_coefficients() -> None:
    fit = fit_costs(_sentences(0.5, {"sf": 2.0, "id": 4.0}), KINDS)
    assert fit.seconds_per_word == pytest.approx(0.5)
    assert fit.seconds_per_label == pytest.approx({"id": 4.0, "sf": 2.0})
    assert fit.r2 == pytest.approx(1.0)
    assert fit.n_sentences == 40
    # in the paper's unit (a word = 1): an entity costs 4 words, an intent 8
    model = fit.cost_model()
    assert dict(model.label_costs) == pytest.approx({"sf": 4.0, "id": 8.0})
    # predictions reproduce the times; the dict round trip keeps the fit
    sentences = _sentences(0.5, {"sf": 2.0, "id": 4.0})
    again = FittedCosts.from_dict(fit.to_dict())
    np.testing.assert_allclose(again.predict(sentences), [s.seconds for s in sentences])


def test_noisy_times_fit_close_and_r2_says_how_well() -> None:
    fit = fit_costs(_sentences(0.5, {"sf": 2.0, "id": 4.0}, noise=0.5), KINDS)
    assert fit.seconds_per_word == pytest.approx(0.5, abs=0.1)
    assert fit.seconds_per_label["sf"] == pytest.approx(2.0, abs=0.5)
    assert 0.8 < fit.r2 < 1.0


def test_a_negative_unconstrained_coefficient_is_clamped_to_zero() -> None:
    # times that fall with the number of entities: the per-entity price is 0, not negative
    sentences = [
        TimedSentence(m, {"sf": n}, 1.0 * m - 0.5 * n) for m in (5, 8, 12) for n in (0, 1, 2)
    ]
    fit = fit_costs(sentences, KINDS)
    assert fit.seconds_per_label["sf"] == 0.0
    assert fit.seconds_per_word > 0


def test_too_few_sentences_and_unknown_kinds_are_refused() -> None:
    few = [TimedSentence(5, {"sf": 1, "id": 1}, 10.0), TimedSentence(7, {"sf": 0}, 8.0)]
    with pytest.raises(SelectionError, match=r"2 timed sentence.*3 cost coefficients"):
        fit_costs(few, KINDS)
    untimed = [TimedSentence(5, {"sf": 1}, 0.0)] * 5
    with pytest.raises(SelectionError, match="0 timed sentence"):
        fit_costs(untimed, KINDS)
    with pytest.raises(SelectionError, match="no label kind"):
        fit_costs([TimedSentence(5, {"xx": 1}, 3.0)] * 3, KINDS)


def test_label_costs_replace_tp_and_ts_per_task() -> None:
    table = {
        "id": ["a", "b"],
        "n_tokens": [4, 10],
        "sf.ec": [0.1, 0.2],
        "sf.n_entities": [2, 0],
        "id.ec": [0.3, 0.4],
    }
    ct = load_table(table)
    paper = CostModel().costs(ct)
    np.testing.assert_allclose(paper.task("sf"), [4 + 1 * 2, 10])
    np.testing.assert_allclose(paper.task("id"), [4 + 3, 10 + 3])
    fitted = CostModel(label_costs={"sf": 4.0, "id": 8.0}).costs(ct)
    np.testing.assert_allclose(fitted.task("sf"), [4 + 4 * 2, 10])
    np.testing.assert_allclose(fitted.task("id"), [4 + 8, 10 + 8])
    np.testing.assert_allclose(fitted.joint, [4 + 8 + 8, 10 + 0 + 8])


def test_nnls_is_scale_invariant_for_a_tiny_column() -> None:
    # hypothesis found this: a column of entries ~1e-139 must still be used (x0 ~ 7e138)
    a = np.zeros((6, 3))
    a[0, 0] = -1.34363611e-139
    b = -np.ones(6)
    x = nonnegative_least_squares(a, b)
    assert float(np.sum((a @ x - b) ** 2)) == pytest.approx(5.0)
