"""The ``mtal_`` metric declarations and :class:`ALMetrics` without a running Ray.

The round trip through a real Ray and a real Prometheus is in
``test_metrics_prometheus.py``.
"""

from __future__ import annotations

import dataclasses
import logging
import pickle
import re
from pathlib import Path

import pytest
import ray

from mtal_ray import prometheus as m

REPO = Path(__file__).resolve().parents[1]
PROMETHEUS_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


@pytest.fixture
def no_ray() -> None:
    if ray.is_initialized():
        ray.shutdown()


def test_every_metric_is_declared_valid() -> None:
    names = [spec.name for spec in m.METRICS]
    assert len(names) == len(set(names))
    for spec in m.METRICS:
        m.validate_spec(spec)
        assert spec.name.startswith("mtal_")
        for series in m.exported_series(spec):
            assert PROMETHEUS_NAME.match(series), series


def test_the_issue_s_quantities_each_have_a_metric() -> None:
    names = {spec.name for spec in m.METRICS}
    assert {
        "mtal_al_iteration",
        "mtal_labeled_sentences",
        "mtal_pool_sentences",
        "mtal_scored_rows",
        "mtal_scoring_rows_per_second",
        "mtal_selection_latency_seconds",
        "mtal_annotation_cost_spent",
        "mtal_annotation_cost_given",
        "mtal_dev_score",
    } <= names
    assert "task" in m.LABELED_SENTENCES.tag_keys and "task" in m.DEV_SCORE.tag_keys


def test_only_activity_gauges_expire() -> None:
    """State gauges are re-published; only the per-batch throughput is left to expire."""
    assert [s.name for s in m.METRICS if not s.refreshed] == ["mtal_scoring_rows_per_second"]


def test_exported_series_names() -> None:
    assert m.exported_series(m.AL_ITERATION) == ("ray_mtal_al_iteration",)
    assert m.exported_series(m.SCORED_ROWS) == ("ray_mtal_scored_rows_total",)
    assert m.exported_series(m.SELECTION_LATENCY) == (
        "ray_mtal_selection_latency_seconds_bucket",
        "ray_mtal_selection_latency_seconds_sum",
        "ray_mtal_selection_latency_seconds_count",
    )
    assert len(m.all_exported_series()) == sum(len(m.exported_series(s)) for s in m.METRICS)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "al_iteration"}, "must start with 'mtal_'"),
        ({"name": "mtal_al-iteration"}, "not a valid Prometheus metric name"),
        ({"name": "mtal_a:b"}, "not a valid Prometheus metric name"),
        ({"description": "  "}, "description is empty"),
        ({"tag_keys": ("task",)}, "first label must be 'experiment'"),
        ({"tag_keys": ("experiment", "task", "task")}, "duplicate label"),
        ({"tag_keys": ("experiment", "__task")}, "invalid label name"),
        ({"tag_keys": ("experiment", "1task")}, "invalid label name"),
        ({"boundaries": (1.0,)}, "only histograms take buckets"),
        ({"kind": "counter", "refreshed": False}, "only gauges can opt out of refreshing"),
    ],
)
def test_validate_spec_rejects(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        m.validate_spec(dataclasses.replace(m.DEV_SCORE, **change))


@pytest.mark.parametrize("buckets", [(), (0.0, 1.0), (1.0, 1.0), (2.0, 1.0)])
def test_validate_spec_rejects_bad_buckets(buckets: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="buckets"):
        m.validate_spec(dataclasses.replace(m.SELECTION_LATENCY, boundaries=buckets))


def test_records_are_noops_without_ray(no_ray: None, caplog: pytest.LogCaptureFixture) -> None:
    metrics = m.ALMetrics("offline")
    with caplog.at_level(logging.DEBUG, logger="mtal_ray.prometheus"):
        metrics.record_iteration(2, {"sf": 10, "id": 12}, pool_size=88)
        metrics.record_scored(rows=64, seconds=0.5)
        metrics.record_selection("mt_avg", 0.01)
        with metrics.time_selection("mt_max"):
            pass
        metrics.record_annotation_cost(spent=20.0, budget=100.0, given=22.0)
        metrics.record_dev_scores({"sf": {"f1": 0.5}})
        metrics.refresh()
        assert metrics.enabled is False
    messages = [r.getMessage() for r in caplog.records if r.name == "mtal_ray.prometheus"]
    assert len(messages) == 1, "one debug message per recorder, not one per call"
    assert "Ray is not initialised" in messages[0] and "'offline'" in messages[0]
    assert caplog.records[0].levelno == logging.DEBUG
    assert not ray.is_initialized(), "recording must never start Ray"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda a: a.record_scored(rows=-1, seconds=1.0), "rows"),
        (lambda a: a.record_scored(rows=5, seconds=float("nan")), "seconds"),
        (lambda a: a.record_iteration(-1, {}, 0), "iteration"),
        (lambda a: a.record_iteration(0, {"": 3}, 0), "task"),
        (lambda a: a.record_iteration(0, {"sf": -3}, 0), "labeled"),
        (lambda a: a.record_selection("", 0.1), "selector"),
        (lambda a: a.record_selection("mt_avg", -0.1), "seconds"),
        (lambda a: a.record_annotation_cost(spent=float("inf")), "spent"),
        (lambda a: a.record_annotation_cost(spent=1.0, budget=-2.0), "budget"),
        (lambda a: a.record_annotation_cost(spent=1.0, given=float("nan")), "given"),
        (lambda a: a.record_dev_scores({"sf": {"f1": float("nan")}}), "score sf/f1"),
    ],
)
def test_invalid_values_raise_even_without_ray(no_ray: None, call, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        call(m.ALMetrics("x"))


def test_experiment_must_be_named() -> None:
    with pytest.raises(ValueError, match="experiment"):
        m.ALMetrics("")


def test_pickles_as_its_experiment_only(no_ray: None) -> None:
    metrics = m.ALMetrics("sweep-trial-3")
    metrics.record_scored(rows=1, seconds=1.0)
    copy = pickle.loads(pickle.dumps(metrics))
    assert copy.experiment == "sweep-trial-3"
    assert copy._metrics is None
    assert repr(copy) == "ALMetrics(experiment='sweep-trial-3')"


class _RecordingALMetrics(m.ALMetrics):
    """Captures selection latencies instead of exporting them."""

    def __init__(self) -> None:
        super().__init__("timing")
        self.latencies: list[tuple[str, float]] = []

    def record_selection(self, selector: str, seconds: float) -> None:
        self.latencies.append((selector, seconds))


def test_time_selection_measures_the_body_and_skips_failures() -> None:
    import time

    metrics = _RecordingALMetrics()
    with metrics.time_selection("mt_par"):
        time.sleep(0.05)
    assert metrics.latencies[0][0] == "mt_par"
    assert 0.05 <= metrics.latencies[0][1] < 1.0
    with pytest.raises(RuntimeError), metrics.time_selection("mt_rrf"):
        raise RuntimeError("selector failed")
    assert len(metrics.latencies) == 1


def test_metrics_are_documented() -> None:
    """Both the module docstring table and dashboards/README.md list every metric."""
    readme = (REPO / "dashboards" / "README.md").read_text()
    for spec in m.METRICS:
        assert f"``{spec.name}``" in (m.__doc__ or ""), spec.name
        for series in m.exported_series(spec):
            if not series.endswith(("_sum", "_count")):
                assert series in readme, f"dashboards/README.md does not document {series}"


def test_the_runs_observer_publishes_the_cost_spent_and_the_cost_given(tmp_path) -> None:
    from mtal_ray.driver.callbacks import RunInfo, StepReport
    from mtal_ray.driver.observers import PrometheusCallback
    from mtal_ray.driver.state import LoopState, Step

    class Recorder:
        def __init__(self) -> None:
            self.calls: list[tuple] = []

        def record_annotation_cost(self, spent, budget=None, given=None) -> None:
            self.calls.append((spent, budget, given))

    callback = PrometheusCallback("exp", "mt-avg", budget=900.0)
    callback.metrics = Recorder()  # type: ignore[assignment]
    state = LoopState(config_digest="d", iterations=3)
    state.cost_spent, state.annotated_cost_spent = 310.0, 296.0
    run = RunInfo(run_dir=tmp_path, config=None, tasks=["sf", "id"], state=state, resumed=False)
    callback.on_step_end(run, StepReport(step=Step.UPDATE, iteration=0))
    assert callback.metrics.calls == [(310.0, 900.0, 296.0)]
