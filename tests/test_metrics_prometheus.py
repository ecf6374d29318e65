"""mtal_ metrics through a real Ray and a real Prometheus.

A local Ray records the metrics from the driver and from a scoring actor through
:class:`mtal_ray.prometheus.ALMetrics`; a real ``prometheus`` binary (Debian's package; CI
installs it with ``.ci/install_prometheus.sh``) is started on loopback with the project's
``dashboards/prometheus.yml``, rewritten only to point at this Ray session's
service-discovery file and to scrape every second. The values are read back through
Prometheus's HTTP query API and compared with what was recorded; then every query of the
Grafana dashboard is evaluated by the same server.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
import yaml
from ray._private import ray_constants
from test_dashboards import dashboard_expressions, promql_metric_names

from mtal_ray.prometheus import METRICS, ALMetrics, exported_series

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
SCRAPE_CONFIG = REPO / "dashboards" / "prometheus.yml"
EXPERIMENT = "prom-it"
DEADLINE_S = 90.0
# Without re-publication Ray 2.60 drops a gauge ~20 s after its last set (report interval 1 s).
STATE_GAUGE_CHECK_AFTER_S = 40.0

# Ray's default metrics the dashboard uses that exist on any node, GPU or not.
RAY_DEFAULTS_ON_CPU = ("ray_node_cpu_utilization", "ray_node_mem_used_host", "ray_actors")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def prometheus_binary() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip(
            "the prometheus binary is not installed (Debian package 'prometheus'; "
            "CI installs it with .ci/install_prometheus.sh)"
        )
    return binary


@pytest.fixture(scope="module")
def ray_session(prometheus_binary: str) -> Iterator[Path]:
    """A local Ray with its dashboard (which writes the service-discovery file)."""
    if ray.is_initialized():
        ray.shutdown()
    # A short private temp dir: Unix socket paths must stay < 108 bytes, and other Ray
    # sessions on the machine must not overwrite our service-discovery file.
    temp_dir = tempfile.mkdtemp(prefix="mtal-prom-", dir="/tmp")
    # Authentication off explicitly, as on every test head (ray_head.py): left unset, a local
    # ray.init() turns token authentication on for the rest of this process
    # (os.environ["RAY_AUTH_MODE"] = "token"), and every actor that a later module's driver
    # in this process then created on an unauthenticated head was "cancelled before it
    # started running" (9 failures at the end of the full suite).
    auth_mode = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    context = ray.init(
        num_cpus=2,
        include_dashboard=True,  # the dashboard process writes the service-discovery file
        dashboard_host="127.0.0.1",
        dashboard_port=_free_port(),
        _temp_dir=temp_dir,
        _system_config={"metrics_report_interval_ms": 1000},
    )
    try:
        yield Path(context.address_info["session_dir"])
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)
        if auth_mode is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = auth_mode


@pytest.fixture(scope="module")
def prometheus(prometheus_binary: str, ray_session: Path) -> Iterator[str]:
    """The project's scrape config, served by a real Prometheus on a loopback port."""
    discovery = ray_session / ray_constants.PROMETHEUS_SERVICE_DISCOVERY_FILE
    _wait_for(discovery.exists, f"Ray never wrote {discovery}")
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    config["global"]["scrape_interval"] = "1s"
    config["global"]["evaluation_interval"] = "1s"
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "ray"]
    for sd_config in job["file_sd_configs"]:
        sd_config["files"] = [str(discovery)]
        sd_config["refresh_interval"] = "1s"
    work = Path(tempfile.mkdtemp(prefix="mtal-prom-server-"))
    config_path = work / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    port = _free_port()
    log = (work / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            prometheus_binary,
            f"--config.file={config_path}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--storage.tsdb.path={work / 'data'}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(lambda: _ready(url), "Prometheus did not become ready", process=process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(work, ignore_errors=True)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _wait_for(condition, message: str, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if condition():
            return
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{message}: exited with {process.returncode}")
        time.sleep(0.5)
    raise AssertionError(message)


def query(url: str, expr: str) -> list[dict[str, Any]]:
    """Instant query through Prometheus's HTTP API; asserts the query is valid PromQL."""
    request = f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            body = json.load(response)
    except urllib.error.HTTPError as err:
        raise AssertionError(f"query {expr!r} refused: {err.read().decode()}") from err
    assert body["status"] == "success", body
    return body["data"]["result"]


def _values(url: str, expr: str) -> dict[tuple[tuple[str, str], ...], float]:
    keep = ("experiment", "task", "metric", "selector", "le")
    return {
        tuple((k, v) for k, v in sorted(item["metric"].items()) if k in keep): float(
            item["value"][1]
        )
        for item in query(url, expr)
    }


def _all_match(url: str, expected: dict, got: dict, selector: str = "") -> bool:
    """Whether Prometheus holds ``expected`` ({expr: {label key: value}}); fills ``got``."""
    for expr, want in expected.items():
        # Sum over Ray's own labels (WorkerId, ...): one series per label set we set.
        labels = sorted({k for key in want for k, _ in key})
        got[expr] = _values(url, f"sum by ({', '.join(labels)}) ({expr}{selector})")
        if got[expr] != pytest.approx(want):
            return False
    return True


def _wait_for_match(url: str, expected: dict, got: dict, selector: str = "") -> None:
    try:
        _wait_for(lambda: _all_match(url, expected, got, selector), "timeout")
    except AssertionError:
        raise AssertionError(f"Prometheus holds {got}, expected {expected}") from None


@ray.remote(num_cpus=0.5)
class _ScoringActor:
    """Stands in for a Ray Data scoring actor: records what it scored."""

    def __init__(self, metrics: ALMetrics) -> None:
        self.metrics = metrics

    def score(self, rows: int, seconds: float) -> bool:
        self.metrics.record_scored(rows=rows, seconds=seconds)
        return self.metrics.enabled


@pytest.fixture(scope="module")
def recorded(ray_session: Path) -> tuple[ALMetrics, float]:
    """Record one known state of an AL run, from the driver and from an actor."""
    metrics = ALMetrics(EXPERIMENT)
    metrics.record_iteration(3, {"sf": 40, "id": 38}, pool_size=922)
    metrics.record_annotation_cost(spent=120.0, budget=500.0, given=131.0)
    metrics.record_dev_scores({"sf": {"f1": 0.5}, "id": {"accuracy": 0.75}})
    metrics.record_selection("mt_avg", 0.02)
    metrics.record_selection("mt_avg", 2.0)
    actor = _ScoringActor.remote(metrics)  # ALMetrics pickles to the actor
    assert ray.get(actor.score.remote(120, 2.0))
    assert ray.get(actor.score.remote(120, 2.0))
    return metrics, time.monotonic()


def test_mtal_metrics_read_back_through_prometheus(
    prometheus: str, recorded: tuple[ALMetrics, float]
) -> None:
    _, recorded_at = recorded
    exp = (("experiment", EXPERIMENT),)
    expected = {
        "ray_mtal_al_iteration": {exp: 3.0},
        "ray_mtal_pool_sentences": {exp: 922.0},
        "ray_mtal_labeled_sentences": {
            (("experiment", EXPERIMENT), ("task", "id")): 38.0,
            (("experiment", EXPERIMENT), ("task", "sf")): 40.0,
        },
        "ray_mtal_annotation_cost_spent": {exp: 120.0},
        "ray_mtal_annotation_cost_given": {exp: 131.0},
        "ray_mtal_annotation_budget": {exp: 500.0},
        "ray_mtal_dev_score": {
            (("experiment", EXPERIMENT), ("metric", "f1"), ("task", "sf")): 0.5,
            (("experiment", EXPERIMENT), ("metric", "accuracy"), ("task", "id")): 0.75,
        },
        "ray_mtal_scored_rows_total": {exp: 240.0},
        "ray_mtal_scoring_seconds_total": {exp: 4.0},
        "ray_mtal_scoring_rows_per_second": {exp: 60.0},
        "ray_mtal_selection_latency_seconds_count": {
            (("experiment", EXPERIMENT), ("selector", "mt_avg")): 2.0
        },
        # Ray sums bucket midpoints, not observations: 0.02 s counts as 0.03 (midpoint of
        # the (0.01, 0.05] bucket) and 2.0 s as 3.0 (midpoint of (1, 5]).
        "ray_mtal_selection_latency_seconds_sum": {
            (("experiment", EXPERIMENT), ("selector", "mt_avg")): 3.03
        },
        "ray_mtal_selection_last_seconds": {
            (("experiment", EXPERIMENT), ("selector", "mt_avg")): 2.0
        },
        # 0.02 s falls in the 0.05 bucket, 2.0 s in the 5.0 bucket (cumulative counts).
        'ray_mtal_selection_latency_seconds_bucket{le=~"0.01|0.05|1.0|5.0"}': {
            (("experiment", EXPERIMENT), ("le", "0.01"), ("selector", "mt_avg")): 0.0,
            (("experiment", EXPERIMENT), ("le", "0.05"), ("selector", "mt_avg")): 1.0,
            (("experiment", EXPERIMENT), ("le", "1.0"), ("selector", "mt_avg")): 1.0,
            (("experiment", EXPERIMENT), ("le", "5.0"), ("selector", "mt_avg")): 2.0,
        },
    }
    got: dict[str, Any] = {}
    _wait_for_match(prometheus, expected, got)

    # Ray 2.60 drops a gauge that is not set again for a few report intervals. ALMetrics
    # re-publishes its state gauges, so they are still there long after the last record_*
    # call, while the throughput gauge, which it deliberately does not re-publish, is gone.
    time.sleep(max(0.0, recorded_at + STATE_GAUGE_CHECK_AFTER_S - time.monotonic()))
    throughput = expected.pop("ray_mtal_scoring_rows_per_second")
    assert _all_match(prometheus, expected, got), f"state gauges vanished: Prometheus holds {got}"
    assert throughput and not query(prometheus, "ray_mtal_scoring_rows_per_second"), (
        "a gauge that is not re-published should have expired (Ray's gauge TTL changed?)"
    )
    # Every series came through Ray's service discovery, scraped as job "ray".
    jobs = {item["metric"]["job"] for item in query(prometheus, "ray_mtal_al_iteration")}
    assert jobs == {"ray"}


def _panel_query(expr: str) -> str:
    """A dashboard query with Grafana's variables replaced as Grafana would."""
    return (
        expr.replace("$experiment", EXPERIMENT)
        .replace("$__rate_interval", "1m")
        .replace("$__range", "10m")
    )


def test_every_dashboard_query_evaluates(
    prometheus: str, recorded: tuple[ALMetrics, float]
) -> None:
    _wait_for(lambda: bool(query(prometheus, "ray_mtal_al_iteration")), "no mtal_ data yet")
    # The rate() panels need two samples of the counters.
    _wait_for(
        lambda: bool(query(prometheus, "rate(ray_mtal_scored_rows_total[1m])")),
        "no rate over the scoring counter yet",
    )
    # Gauges that are not re-published expire when their activity stops; their panels may
    # be empty by now (see test_mtal_metrics_read_back_through_prometheus).
    transient = {name for spec in METRICS if not spec.refreshed for name in exported_series(spec)}
    empty = []
    for where, expr in dashboard_expressions():
        result = query(prometheus, _panel_query(expr))  # refused PromQL fails here
        names = promql_metric_names(expr)
        if "ray_mtal_" in expr and not result and not names <= transient:
            empty.append(where)
    assert not empty, f"mtal_ panels without data: {empty}"
    for name in RAY_DEFAULTS_ON_CPU:
        _wait_for(lambda n=name: bool(query(prometheus, n)), f"Ray default {name} missing")


def test_every_node_is_scraped(prometheus: str, recorded: tuple[ALMetrics, float]) -> None:
    """Service discovery gave Prometheus each Ray node's metrics endpoint, and it is up.

    (The file also lists the dashboard's and autoscaler's fixed ports, which other Ray
    instances on a shared machine may hold; only the nodes are asserted.)
    """
    nodes = {
        f"{n['NodeManagerAddress']}:{n['MetricsExportPort']}" for n in ray.nodes() if n["Alive"]
    }
    assert nodes
    up = {
        item["metric"]["instance"]: item["value"][1] for item in query(prometheus, 'up{job="ray"}')
    }
    for node in nodes:
        assert up.get(node) == "1", f"node {node} not scraped: {up}"


def test_a_real_experiment_exports_its_metrics(
    prometheus: str, ray_session: Path, encoder: str, tmp_path: Path
) -> None:
    """A tiny AL run (synthetic SF+ID, tiny encoder, dev-calibrated scoring) in this Ray
    session; its driver and its Ray Data scoring actors publish mtal_ metrics that
    Prometheus scrapes."""
    from mtal_ray.config import load_config
    from mtal_ray.driver.loop import ActiveLearningLoop

    experiment = "prom-real-run"
    config = load_config(
        None,
        [
            "data.path=synthetic",
            "data.synthetic.n_train=40",
            "data.synthetic.n_dev=10",
            "data.synthetic.n_test=10",
            "data.initial_count=8",
            "data.dev_multiple=1.0",
            f"model.encoder={encoder}",
            "training.num_workers=0",  # in this process: no Train metrics are checked
            "training.max_steps=2",
            "training.eval_every=2",
            "training.batch_size=8",
            "scoring.k=2",
            "scoring.concurrency=1",
            "scoring.cpus_per_actor=0.5",
            "scoring.calibrate=true",  # the driver refits temperatures on dev each round
            "selection.method=mt-avg",
            "selection.n=6",
            "al.iterations=2",
            "tracking.enabled=false",
            f"tracking.experiment={experiment}",
        ],
    )
    run_dir = tmp_path / "run"
    summary = ActiveLearningLoop(config, run_dir).run()
    assert summary.status == "finished"
    state = json.loads((run_dir / "state.json").read_text())
    pool_scored = state["pool_size"] + 6  # round 0 scored the pool it then selected 6 from
    exp = (("experiment", experiment),)
    expected = {
        "ray_mtal_al_iteration": {exp: 1.0},
        "ray_mtal_pool_sentences": {exp: float(state["pool_size"])},
        "ray_mtal_labeled_sentences": {
            (("experiment", experiment), ("task", task)): float(len(ids))
            for task, ids in state["labeled"].items()
        },
        "ray_mtal_scored_rows_total": {exp: float(pool_scored)},
        "ray_mtal_selection_latency_seconds_count": {exp: 1.0},
    }
    _wait_for_match(prometheus, expected, {}, selector=f'{{experiment="{experiment}"}}')
    assert len(state["labeled"]["sf"]) == 8 + 6
    # calibration: the round's confidence table was scored with temperatures fitted on dev
    from mtal_ray.scoring.table import read_confidence_table, table_metadata

    table = read_confidence_table(run_dir / "rounds" / "round_0" / "confidence.parquet")
    temperatures = table_metadata(table)["temperatures"]
    assert set(temperatures) == {"sf", "id"} and all(t > 0 for t in temperatures.values())
