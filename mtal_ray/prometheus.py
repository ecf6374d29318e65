"""Custom Ray metrics of an active-learning run, exported to Prometheus.

The driver and the scoring actors record what a running experiment is doing through
:class:`ALMetrics`; Ray's metrics agent on every node exposes the values to Prometheus
(``dashboards/prometheus.yml`` scrapes them through Ray's service-discovery file) and the
Grafana dashboard ``dashboards/mtal_ray.json`` plots them.

Every metric is declared once in :data:`METRICS`. Names start with ``mtal_`` and are valid
Prometheus names; Ray prefixes custom metrics with ``ray_`` when it exports them and appends
``_total`` to counters (and ``_bucket``/``_sum``/``_count`` to histograms), so the series
Prometheus stores are the ones :func:`exported_series` returns, e.g. ``mtal_scored_rows`` is
queried as ``ray_mtal_scored_rows_total``. Every series carries the ``experiment`` label
(the experiment/run name given to :class:`ALMetrics`) so several runs on one cluster, such as
the trials of a sweep, stay apart.

===================================  =========  ====================  ===========================
metric (exported series)             type       labels                meaning
===================================  =========  ====================  ===========================
``mtal_al_iteration``                gauge      experiment            current AL iteration
``mtal_labeled_sentences``           gauge      experiment, task      labeled-set size per task
``mtal_pool_sentences``              gauge      experiment            unlabeled pool size
``mtal_scored_rows``                 counter    experiment            pool rows scored
``mtal_scoring_seconds``             counter    experiment            time spent scoring them
``mtal_scoring_rows_per_second``     gauge      experiment            last batch's throughput
``mtal_selection_latency_seconds``   histogram  experiment, selector  time of one selection
``mtal_selection_last_seconds``      gauge      experiment, selector  latest selection's time
``mtal_annotation_cost_spent``       gauge      experiment            cumulative annotation cost
``mtal_annotation_cost_given``       gauge      experiment            the same, priced on the
                                                                  labels given
``mtal_annotation_budget``           gauge      experiment            total annotation budget
``mtal_dev_score``                   gauge      experiment, task,     dev-set score per task
                                                metric
===================================  =========  ====================  ===========================

When Ray is not initialised in the calling process every ``record_*`` method is a no-op
that logs one debug message, so pure code paths and unit tests can call them freely.

Two facts about Ray 2.60's export shape this module: a gauge value that its process does
not set again within a few report intervals is dropped, so :class:`ALMetrics` re-publishes
its state gauges from a daemon thread every :data:`REFRESH_INTERVAL_S` seconds; and a
histogram's ``_sum`` is computed from bucket midpoints, so exact selection times are also
kept in the ``mtal_selection_last_seconds`` gauge.

Example
-------
>>> metrics = ALMetrics("ewt-mt-avg")            # in the driver (or a scoring actor)
>>> metrics.record_iteration(1, labeled={"dp": 250, "ner": 250}, pool_size=12043)
>>> metrics.record_scored(rows=512, seconds=3.9)
>>> with metrics.time_selection("mt_avg"):
...     pass                                     # run the selector here
>>> metrics.record_annotation_cost(spent=500.0, budget=2000.0)
>>> metrics.record_dev_scores({"dp": {"las": 0.81}, "ner": {"f1": 0.74}})
"""

from __future__ import annotations

import itertools
import logging
import math
import re
import threading
import time
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

logger = logging.getLogger(__name__)

MetricKind = Literal["gauge", "counter", "histogram"]

#: Prefix of every metric name this project defines.
METRIC_PREFIX = "mtal_"
#: Prefix Ray adds to every custom metric it exports to Prometheus.
RAY_EXPORT_PREFIX = "ray_"

#: Prometheus metric and label name rules (Ray discards metrics that break them; colons are
#: reserved for recording rules and deprecated by Ray).
_METRIC_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

#: Seconds between two re-publications of the state gauges (Ray's default report interval
#: is 10 s and a gauge not set again for about two intervals disappears).
REFRESH_INTERVAL_S = 5.0

#: Histogram buckets for selection latency, in seconds: from a vectorised top-n over a small
#: pool (milliseconds) up to a budget-constrained BLP over a large pool (minutes).
SELECTION_LATENCY_BUCKETS: tuple[float, ...] = (
    0.001,
    0.005,
    0.01,
    0.05,
    0.1,
    0.5,
    1.0,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
)


@dataclass(frozen=True)
class MetricSpec:
    """Declaration of one custom metric.

    Attributes
    ----------
    name:
        Metric name as given to ``ray.util.metrics`` (starts with ``mtal_``).
    kind:
        ``"gauge"``, ``"counter"`` or ``"histogram"``.
    description:
        One-line meaning with its unit; becomes the Prometheus ``# HELP`` text.
    tag_keys:
        Label names; ``experiment`` is always first and set by :class:`ALMetrics`.
    boundaries:
        Bucket upper bounds (histograms only).
    refreshed:
        Gauges only: re-publish the last value periodically. Ray 2.60 drops a gauge value
        that its process has not set again within a few report intervals, so a state gauge
        (iteration, pool size, ...) set once per AL round would vanish from Prometheus
        during a long training step. Gauges that describe recent activity (throughput) are
        not refreshed, so they disappear when the activity stops.
    """

    name: str
    kind: MetricKind
    description: str
    tag_keys: tuple[str, ...] = ("experiment",)
    boundaries: tuple[float, ...] = ()
    refreshed: bool = True


AL_ITERATION = MetricSpec(
    "mtal_al_iteration",
    "gauge",
    "Current active-learning iteration (0 = model trained on the initial labeled set).",
)
LABELED_SENTENCES = MetricSpec(
    "mtal_labeled_sentences",
    "gauge",
    "Sentences in the labeled set annotated for a task.",
    ("experiment", "task"),
)
POOL_SENTENCES = MetricSpec(
    "mtal_pool_sentences",
    "gauge",
    "Sentences left in the unlabeled pool.",
)
SCORED_ROWS = MetricSpec(
    "mtal_scored_rows",
    "counter",
    "Pool rows scored (confidence computed) by the scoring actors.",
)
SCORING_SECONDS = MetricSpec(
    "mtal_scoring_seconds",
    "counter",
    "Seconds the scoring actors spent scoring batches (busy time, summed over actors).",
)
SCORING_ROWS_PER_SECOND = MetricSpec(
    "mtal_scoring_rows_per_second",
    "gauge",
    "Scoring throughput of the last batch of a scoring actor, in rows per second.",
    refreshed=False,
)
SELECTION_LATENCY = MetricSpec(
    "mtal_selection_latency_seconds",
    "histogram",
    "Wall time of one selection step (confidence table to selected ids), in seconds.",
    ("experiment", "selector"),
    SELECTION_LATENCY_BUCKETS,
)
SELECTION_LAST_SECONDS = MetricSpec(
    "mtal_selection_last_seconds",
    "gauge",
    "Wall time of the latest selection step, in seconds (exact; the histogram's sum is not).",
    ("experiment", "selector"),
)
ANNOTATION_COST_SPENT = MetricSpec(
    "mtal_annotation_cost_spent",
    "gauge",
    "Cumulative annotation cost spent, in the configured cost unit (sentences or tokens).",
)
ANNOTATION_COST_GIVEN = MetricSpec(
    "mtal_annotation_cost_given",
    "gauge",
    "Cumulative annotation cost priced on the labels annotators (or the oracle) gave, in the "
    "cost model's unit (the spent cost is priced on the model's predictions).",
)
ANNOTATION_BUDGET = MetricSpec(
    "mtal_annotation_budget",
    "gauge",
    "Total annotation budget of the experiment, in the configured cost unit.",
)
DEV_SCORE = MetricSpec(
    "mtal_dev_score",
    "gauge",
    "Dev-set score of a task after the latest training (e.g. LAS, span F1, accuracy).",
    ("experiment", "task", "metric"),
)

#: Every custom metric of mtal_ray, in documentation order.
METRICS: tuple[MetricSpec, ...] = (
    AL_ITERATION,
    LABELED_SENTENCES,
    POOL_SENTENCES,
    SCORED_ROWS,
    SCORING_SECONDS,
    SCORING_ROWS_PER_SECOND,
    SELECTION_LATENCY,
    SELECTION_LAST_SECONDS,
    ANNOTATION_COST_SPENT,
    ANNOTATION_COST_GIVEN,
    ANNOTATION_BUDGET,
    DEV_SCORE,
)


def exported_series(spec: MetricSpec) -> tuple[str, ...]:
    """Names of the Prometheus series Ray exports for one metric.

    Ray prefixes custom metrics with ``ray_``; counters get the ``_total`` suffix and
    histograms the ``_bucket``, ``_sum`` and ``_count`` series.

    >>> exported_series(SCORED_ROWS)
    ('ray_mtal_scored_rows_total',)
    """
    base = RAY_EXPORT_PREFIX + spec.name
    if spec.kind == "counter":
        return (base + "_total",)
    if spec.kind == "histogram":
        return (base + "_bucket", base + "_sum", base + "_count")
    return (base,)


def all_exported_series() -> frozenset[str]:
    """Every Prometheus series name the metrics of :data:`METRICS` produce."""
    return frozenset(name for spec in METRICS for name in exported_series(spec))


def validate_spec(spec: MetricSpec) -> None:
    """Check that a metric declaration is exportable to Prometheus.

    Raises
    ------
    ValueError
        If the name does not start with ``mtal_``, is not a valid Prometheus metric name,
        a label name is invalid or reserved, the description is empty, or a histogram has
        no increasing positive buckets.
    """
    if not spec.name.startswith(METRIC_PREFIX):
        raise ValueError(f"metric {spec.name!r}: name must start with {METRIC_PREFIX!r}")
    if not _METRIC_NAME_RE.match(spec.name):
        raise ValueError(f"metric {spec.name!r}: not a valid Prometheus metric name")
    if not spec.description.strip():
        raise ValueError(f"metric {spec.name!r}: description is empty")
    if not spec.tag_keys or spec.tag_keys[0] != "experiment":
        raise ValueError(f"metric {spec.name!r}: the first label must be 'experiment'")
    if len(set(spec.tag_keys)) != len(spec.tag_keys):
        raise ValueError(f"metric {spec.name!r}: duplicate label names {spec.tag_keys}")
    for key in spec.tag_keys:
        if not _LABEL_NAME_RE.match(key) or key.startswith("__"):
            raise ValueError(f"metric {spec.name!r}: invalid label name {key!r}")
    if spec.kind == "histogram":
        bounds = spec.boundaries
        if not bounds or bounds[0] <= 0 or any(b <= a for a, b in itertools.pairwise(bounds)):
            raise ValueError(f"metric {spec.name!r}: buckets must be positive and increasing")
    elif spec.boundaries:
        raise ValueError(f"metric {spec.name!r}: only histograms take buckets")
    if spec.kind != "gauge" and not spec.refreshed:
        raise ValueError(f"metric {spec.name!r}: only gauges can opt out of refreshing")


def _check_finite(what: str, value: float, *, minimum: float = 0.0) -> float:
    value = float(value)
    if not math.isfinite(value) or value < minimum:
        raise ValueError(f"{what} must be a finite number >= {minimum}, got {value!r}")
    return value


def _check_label(what: str, value: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    return value


class _GaugeRefresher:
    """One daemon thread per process that re-publishes the state gauges of live recorders."""

    def __init__(self) -> None:
        self._recorders: weakref.WeakSet[ALMetrics] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, recorder: ALMetrics) -> None:
        with self._lock:
            self._recorders.add(recorder)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="mtal-metrics-refresh", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(REFRESH_INTERVAL_S)
            with self._lock:
                recorders = list(self._recorders)
                if not recorders:
                    self._thread = None
                    return
            for recorder in recorders:
                recorder.refresh()


_REFRESHER = _GaugeRefresher()


class ALMetrics:
    """Recorder of an active-learning run's metrics; one per process and experiment.

    Create it in the driver and in each scoring actor (it is also picklable: a copy sent
    to an actor re-creates its Ray metric objects there). The Ray metric objects are
    created on the first ``record_*`` call made while Ray is initialised; before that,
    and whenever Ray is not initialised, recording is a no-op with one debug log message.

    Parameters
    ----------
    experiment:
        Value of the ``experiment`` label on every series (the experiment or run name).
    """

    def __init__(self, experiment: str = "default") -> None:
        self.experiment = _check_label("experiment", experiment)
        self._metrics: dict[str, Any] | None = None
        self._logged_disabled = False
        # Last value of every refreshed gauge series: (metric, sorted tags) -> value.
        self._gauge_values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._gauge_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ALMetrics(experiment={self.experiment!r})"

    def __getstate__(self) -> dict[str, str]:
        return {"experiment": self.experiment}

    def __setstate__(self, state: dict[str, str]) -> None:
        self.__init__(state["experiment"])  # type: ignore[misc]

    @property
    def enabled(self) -> bool:
        """Whether records are exported (Ray is initialised in this process)."""
        return self._handles() is not None

    def _handles(self) -> dict[str, Any] | None:
        import ray

        if not ray.is_initialized():
            if not self._logged_disabled:
                logger.debug(
                    "Ray is not initialised in this process: mtal_ metrics of experiment %r "
                    "are not recorded (call ray.init() first to export them).",
                    self.experiment,
                )
                self._logged_disabled = True
            return None
        if self._metrics is None:
            self._metrics = {spec.name: self._create(spec) for spec in METRICS}
        return self._metrics

    def _create(self, spec: MetricSpec) -> Any:
        from ray.util import metrics as ray_metrics

        metric: Any
        if spec.kind == "gauge":
            metric = ray_metrics.Gauge(spec.name, spec.description, tag_keys=spec.tag_keys)
        elif spec.kind == "counter":
            metric = ray_metrics.Counter(spec.name, spec.description, tag_keys=spec.tag_keys)
        else:
            metric = ray_metrics.Histogram(
                spec.name,
                spec.description,
                boundaries=list(spec.boundaries),
                tag_keys=spec.tag_keys,
            )
        return metric.set_default_tags({"experiment": self.experiment})

    def _set_gauge(
        self, handles: dict[str, Any], spec: MetricSpec, value: float, **tags: str
    ) -> None:
        handles[spec.name].set(value, tags=tags or None)
        if spec.refreshed:
            with self._gauge_lock:
                self._gauge_values[(spec.name, tuple(sorted(tags.items())))] = value
            _REFRESHER.add(self)

    def refresh(self) -> None:
        """Publish the last value of every state gauge again (the refresher thread calls
        this every :data:`REFRESH_INTERVAL_S` seconds; a no-op when Ray is not initialised).
        """
        with self._gauge_lock:
            values = list(self._gauge_values.items())
        if not values or self._metrics is None:
            return
        import ray

        if not ray.is_initialized():
            return
        for (name, tags), value in values:
            try:
                self._metrics[name].set(value, tags=dict(tags) or None)
            except Exception:  # never let the refresher thread die on one series
                logger.debug("could not refresh %s%s", name, dict(tags), exc_info=True)

    def record_iteration(self, iteration: int, labeled: Mapping[str, int], pool_size: int) -> None:
        """Record the loop's position: iteration, labeled-set size per task, pool size.

        Call it when an iteration starts (after the previous annotation was applied).

        Parameters
        ----------
        iteration:
            AL iteration, 0 for the model trained on the initial labeled set.
        labeled:
            Task name -> number of labeled sentences annotated for that task.
        pool_size:
            Sentences left in the unlabeled pool.
        """
        iteration_value = _check_finite("iteration", iteration)
        pool_value = _check_finite("pool_size", pool_size)
        sizes = {
            _check_label("task", task): _check_finite(f"labeled[{task!r}]", size)
            for task, size in labeled.items()
        }
        handles = self._handles()
        if handles is None:
            return
        self._set_gauge(handles, AL_ITERATION, iteration_value)
        self._set_gauge(handles, POOL_SENTENCES, pool_value)
        for task, size in sizes.items():
            self._set_gauge(handles, LABELED_SENTENCES, size, task=task)

    def record_scored(self, rows: int, seconds: float) -> None:
        """Record one scored batch: adds to the row and time counters, sets the throughput.

        Call it from the scoring actor after each batch with the batch's row count and the
        wall time the actor spent on it.

        Parameters
        ----------
        rows:
            Rows scored in the batch (0 is allowed and records nothing).
        seconds:
            Wall time spent scoring them; the throughput gauge is ``rows / seconds`` and is
            left unchanged when ``seconds`` is 0.
        """
        rows_value = _check_finite("rows", rows)
        seconds_value = _check_finite("seconds", seconds)
        handles = self._handles()
        if handles is None or rows_value == 0:
            return
        handles[SCORED_ROWS.name].inc(rows_value)
        if seconds_value > 0:
            handles[SCORING_SECONDS.name].inc(seconds_value)
            self._set_gauge(handles, SCORING_ROWS_PER_SECOND, rows_value / seconds_value)

    def record_selection(self, selector: str, seconds: float) -> None:
        """Record the latency of one selection step of ``selector`` (e.g. ``"mt_avg"``)."""
        selector = _check_label("selector", selector)
        seconds_value = _check_finite("seconds", seconds)
        handles = self._handles()
        if handles is None:
            return
        handles[SELECTION_LATENCY.name].observe(seconds_value, tags={"selector": selector})
        self._set_gauge(handles, SELECTION_LAST_SECONDS, seconds_value, selector=selector)

    @contextmanager
    def time_selection(self, selector: str) -> Iterator[None]:
        """Context manager that records the wall time of its body as a selection latency.

        Nothing is recorded if the body raises (no selection was made).
        """
        start = time.perf_counter()
        yield
        self.record_selection(selector, time.perf_counter() - start)

    def record_annotation_cost(
        self, spent: float, budget: float | None = None, given: float | None = None
    ) -> None:
        """Record the cumulative annotation cost spent (and the total budget, and the cost
        of the labels given, if any).

        Parameters
        ----------
        spent:
            Total cost spent so far in the run (not the increment), so a resumed run reports
            the right value.
        budget:
            Total budget of the run, when the run is budget-constrained.
        given:
            Cumulative cost of the labels annotators (or the oracle) returned, priced with
            the same cost model on those labels rather than on the model's predictions.
        """
        spent_value = _check_finite("spent", spent)
        budget_value = None if budget is None else _check_finite("budget", budget)
        given_value = None if given is None else _check_finite("given", given)
        handles = self._handles()
        if handles is None:
            return
        self._set_gauge(handles, ANNOTATION_COST_SPENT, spent_value)
        if budget_value is not None:
            self._set_gauge(handles, ANNOTATION_BUDGET, budget_value)
        if given_value is not None:
            self._set_gauge(handles, ANNOTATION_COST_GIVEN, given_value)

    def record_dev_scores(self, scores: Mapping[str, Mapping[str, float]]) -> None:
        """Record the dev-set scores after a training step.

        Parameters
        ----------
        scores:
            Task -> metric name -> value, e.g. ``{"dp": {"las": 0.81, "uas": 0.86},
            "ner": {"f1": 0.74}}``. A cross-task aggregate can be recorded under its own
            task name, e.g. ``{"all": {"geomean": 0.77}}``.
        """
        values = {
            (_check_label("task", task), _check_label("metric", metric)): _check_finite(
                f"score {task}/{metric}", value, minimum=-math.inf
            )
            for task, per_metric in scores.items()
            for metric, value in per_metric.items()
        }
        handles = self._handles()
        if handles is None:
            return
        for (task, metric), value in values.items():
            self._set_gauge(handles, DEV_SCORE, value, task=task, metric=metric)
