"""deploy/prometheus and deploy/grafana: valid for the tools that load them (promtool), every alarm fires
on the series that should raise it (promtool's rule tests), and every metric they name is one the
services export, read from the services' own registries rather than from a list kept here."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from services.api.main import create_app
from services.dr_scheduler.metrics import SchedulerMetrics
from services.ingest.metrics import IngestMetrics
from vpp.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
PROMETHEUS = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "vpp-operations.json"
METRIC = re.compile(r"\bvpp_[a-z0-9_]+\b")
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"), "gauge": ("",)}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is not installed: run `make deps` (it installs Debian's prometheus)")
    return found


def exported(registry: CollectorRegistry) -> set[str]:
    """Series names a scrape can show, whether or not a labelled metric has a child yet."""
    names: set[str] = set()
    for family in registry.collect():
        suffixes = SUFFIXES.get(family.type, ("",))
        names.update(family.name + suffix for suffix in suffixes)
    return names


@pytest.fixture(scope="module")
def service_metrics() -> set[str]:
    app = create_app(
        Settings(environment="development"), database_url="postgresql://unused@127.0.0.1:1/unused"
    )  # no connection made
    return exported(IngestMetrics().registry) | exported(SchedulerMetrics().registry) | exported(app.state.api_metrics.registry)  # fmt: skip


def runbook_section(title: str) -> str:
    text = (ROOT / "docs" / "runbook.md").read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else None]


def rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"] for rule in group["rules"]]  # fmt: skip


def dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text())
    assert isinstance(data, dict)
    return data


def panels(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in data["panels"] if p["type"] != "row"]


def test_promtool_accepts_the_rules_and_the_scrape_config() -> None:
    for args in (["check", "rules", "alerts.yml"], ["check", "config", "prometheus.yml"]):
        result = subprocess.run([promtool(), *args], cwd=PROMETHEUS, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


def test_every_alarm_fires_on_its_series_and_not_before() -> None:
    result = subprocess.run(
        [promtool(), "test", "rules", "alerts_test.yml"], cwd=PROMETHEUS, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", (PROMETHEUS / "alerts_test.yml").read_text()))
    assert tested == {rule["alert"] for rule in rules()}, "every alert rule has a promtool test case"


def test_the_rules_cover_the_runbook_alarms() -> None:
    exprs = " ".join(rule["expr"] for rule in rules())
    # Ingest lag, dead-letter rate, writer errors, scheduler dispatch failures, webhook backlog (issue 16).
    for metric in (
        "vpp_ingest_lag_seconds_bucket",
        "vpp_ingest_messages_rejected_total",
        "vpp_ingest_db_errors_total",
        "vpp_dr_signal_publish_failures_total",
        "vpp_openadr_notifications_pending",
    ):
        assert metric in exprs


def test_every_metric_named_in_deploy_and_the_runbook_is_exported(service_metrics: set[str]) -> None:
    sources = {
        "alerts.yml": (PROMETHEUS / "alerts.yml").read_text(),
        "alerts_test.yml": (PROMETHEUS / "alerts_test.yml").read_text(),
        "dashboard": DASHBOARD.read_text(),
        "runbook alarms": runbook_section("Alarms"),
    }
    unknown = {name: sorted(set(METRIC.findall(text)) - service_metrics) for name, text in sources.items()}
    assert unknown == {name: [] for name in sources}, f"not exported by any service: {unknown}"


def test_dashboard_is_a_grafana_dashboard_over_a_chosen_prometheus() -> None:
    data = dashboard()
    for key, kind in (("uid", str), ("title", str), ("schemaVersion", int), ("panels", list), ("templating", dict)):
        assert isinstance(data.get(key), kind), key
    variables = {v["name"]: v for v in data["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in data["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    cells: set[tuple[int, int]] = set()
    for panel in data["panels"]:
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) for k in "xywh"), panel["title"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]  # Grafana's grid is 24 columns wide
        assert grid["h"] > 0, panel["title"]
        mine = {
            (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine
    for panel in panels(data):
        assert panel["type"] in {"timeseries", "stat", "gauge", "table", "bargauge"}, panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert refs, panel["title"]
        assert len(refs) == len(set(refs)), panel["title"]
        assert all(t["expr"].strip() and t["datasource"] == panel["datasource"] for t in panel["targets"])


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    # promtool parses PromQL only in rule files: each query becomes a recording rule to be checked.
    exprs = [t["expr"] for p in panels(dashboard()) for t in p["targets"]]
    rule_file = tmp_path / "dashboard_rules.yml"
    recording = [{"record": f"dashboard:query_{i}", "expr": e} for i, e in enumerate(exprs)]
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": recording}]}))
    result = subprocess.run([promtool(), "check", "rules", str(rule_file)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_shows_every_alarm() -> None:
    described = " ".join(p.get("description", "") for p in panels(dashboard()))
    missing = [rule["alert"] for rule in rules() if rule["alert"] not in described]
    assert not missing, f"no panel names these alerts: {missing}"
