"""The Grafana dashboard and the Prometheus scrape config in ``dashboards/``.

Every metric a panel queries must be one that ``mtal_ray.prometheus`` exports (under the
``ray_`` prefix Ray gives custom metrics) or one of Ray's default metrics, which are
recognised by their presence in the Grafana panels Ray itself ships with the installed
version. That the queries evaluate in a real Prometheus is checked in
``test_metrics_prometheus.py``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import ray
import yaml
from ray._private import ray_constants

from mtal_ray.prometheus import METRICS, RAY_EXPORT_PREFIX, all_exported_series, exported_series

REPO = Path(__file__).resolve().parents[1]
DASHBOARD = REPO / "dashboards" / "mtal_ray.json"
SCRAPE_CONFIG = REPO / "dashboards" / "prometheus.yml"

# PromQL words that look like identifiers but are not metric names.
_PROMQL_KEYWORDS = frozenset(
    [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "inf",
        "nan",
    ]
)


def promql_metric_names(expr: str) -> set[str]:
    """Metric names referenced by a PromQL expression (including Grafana variables).

    Strings, label matchers ``{...}``, range/subquery brackets ``[...]``, ``by``/``without``/
    ``on``/``ignoring``/``group_*`` label lists and Grafana variables are removed; what is
    left that looks like an identifier and is not a function call, keyword or number is a
    metric name.
    """
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    text = re.sub(r"\{[^{}]*\}", " ", text)
    text = re.sub(r"\[[^\[\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", " ", text)
    text = re.sub(r"\$\{?\w+\}?", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?", text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in _PROMQL_KEYWORDS:
            continue
        names.add(name)
    return names


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("ray_mtal_al_iteration", {"ray_mtal_al_iteration"}),
        (
            'sum by (experiment, task) (rate(ray_mtal_scored_rows_total{experiment=~"$x"}[5m]))',
            {"ray_mtal_scored_rows_total"},
        ),
        (
            "histogram_quantile(0.95, sum by (le) (rate(a_bucket[$__rate_interval])))",
            {"a_bucket"},
        ),
        ("sum(x) / on() (sum(y) or vector(0)) * 100", {"x", "y"}),
        ('clamp_min(sum(ray_tasks{State=~"RUNNING.*",Name!="by(x)"}) by (Name), 0)', {"ray_tasks"}),
        ("max_over_time(ray_tasks[14d]) offset 1h > bool 2e3", {"ray_tasks"}),
    ],
)
def test_promql_metric_names(expr: str, expected: set[str]) -> None:
    assert promql_metric_names(expr) == expected


def _load_dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _query_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    panels = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            panels.extend(panel.get("panels", []))
        else:
            panels.append(panel)
    return panels


def dashboard_expressions() -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and every templating query."""
    dashboard = _load_dashboard()
    found = [
        (f"panel {panel['title']!r} {target['refId']}", target["expr"])
        for panel in _query_panels(dashboard)
        for target in panel["targets"]
    ]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            found.append((f"variable {variable['name']}", grafana_series_query(variable)))
    return found


def grafana_series_query(variable: dict[str, Any]) -> str:
    """The PromQL selector inside a Grafana ``label_values(selector, label)`` variable."""
    query = variable["query"]["query"]
    match = re.fullmatch(r"\s*label_values\((.+),\s*(\w+)\s*\)\s*", query)
    assert match, f"variable {variable['name']}: unsupported query {query!r}"
    return match.group(1)


def test_experiment_variable_lists_experiments() -> None:
    variables = {v["name"]: v for v in _load_dashboard()["templating"]["list"]}
    assert grafana_series_query(variables["experiment"]) == "ray_mtal_al_iteration"
    assert variables["experiment"]["query"]["query"].endswith(", experiment)")


@cache
def ray_default_metric_names() -> frozenset[str]:
    """Metric names used by the Grafana panels Ray ships (its default dashboards)."""
    panel_dir = Path(ray.__file__).parent / "dashboard" / "modules" / "metrics" / "dashboards"
    names: set[str] = set()
    for source in panel_dir.glob("*_panels.py"):
        names.update(re.findall(r"\b(ray_[a-zA-Z0-9_]+)", source.read_text()))
    assert len(names) > 50, f"Ray's dashboard panel definitions not found in {panel_dir}"
    return frozenset(names)


def test_dashboard_structure() -> None:
    dashboard = _load_dashboard()
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in _query_panels(dashboard):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        assert panel["description"], panel["title"]


def test_every_queried_metric_is_exported_or_a_ray_default() -> None:
    ours = all_exported_series()
    ray_defaults = ray_default_metric_names()
    for where, expr in dashboard_expressions():
        names = promql_metric_names(expr)
        assert names, f"{where}: no metric in {expr!r}"
        for name in names:
            if name.startswith(RAY_EXPORT_PREFIX + "mtal_"):
                assert name in ours, f"{where}: {name} is not exported by mtal_ray.prometheus"
            else:
                assert name in ray_defaults, f"{where}: {name} is neither ours nor Ray's"


def test_every_metric_has_a_panel() -> None:
    queried = {name for _, expr in dashboard_expressions() for name in promql_metric_names(expr)}
    for spec in METRICS:
        assert queried & set(exported_series(spec)), f"no panel shows {spec.name}"


def test_mtal_panels_filter_by_experiment() -> None:
    for where, expr in dashboard_expressions():
        if "ray_mtal_" in expr and where.startswith("panel"):
            for selector in re.findall(r"ray_mtal_\w+(\{[^}]*\})?", expr):
                assert 'experiment=~"$experiment"' in selector, f"{where}: {expr}"


def test_scrape_config_uses_ray_service_discovery() -> None:
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    files = [f for sd in jobs["ray"]["file_sd_configs"] for f in sd["files"]]
    assert files == [f"/tmp/ray/{ray_constants.PROMETHEUS_SERVICE_DISCOVERY_FILE}"]


def test_scrape_config_passes_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian package prometheus) is not installed")
    result = subprocess.run(
        [promtool, "check", "config", str(SCRAPE_CONFIG)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_provisioning_matches_the_readme() -> None:
    datasource = yaml.safe_load((REPO / "dashboards" / "grafana" / "datasource.yml").read_text())
    provider = yaml.safe_load((REPO / "dashboards" / "grafana" / "dashboards.yml").read_text())
    assert datasource["datasources"][0]["type"] == "prometheus"
    path = provider["providers"][0]["options"]["path"]
    assert path in (REPO / "dashboards" / "README.md").read_text()
