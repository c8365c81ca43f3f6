"""monitoring/ holds together: the rules are well-formed (promtool checks them too where it
is installed), and every metric the rules and the dashboard read is one the code exports
or a rule records."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import REGISTRY

import core.platform.metrics  # noqa: F401  (registers every Herald metric)

ROOT = Path(__file__).resolve().parent.parent
MONITORING = ROOT / "monitoring"
RULES = MONITORING / "prometheus" / "rules.yml"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "herald.json"
METRIC = re.compile(r"\b(herald_[a-z0-9_]+|herald:[a-z0-9_:]+)")
DURATION = re.compile(r"^\d+[smhd]$")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exported() -> set[str]:
    names = set()
    for family in REGISTRY.collect():
        if family.name.startswith("herald_"):
            names |= {family.name + suffix for suffix in SUFFIXES[family.type]}
    return names


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel["targets"]]


def balanced(expr: str) -> bool:
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    for char in re.sub(r'"[^"]*"', '""', expr):
        if char in "([{":
            stack.append(char)
        elif char in pairs and (not stack or stack.pop() != pairs[char]):
            return False
    return not stack


def test_rules_are_well_formed() -> None:
    found = rules()
    assert {r["alert"] for r in found if "alert" in r} >= {
        "HeraldDeadLetterQueueGrowing",
        "HeraldOldestMessageTooOld",
        "HeraldProviderErrorRate",
        "HeraldEndToEndLatencyHigh",
        "HeraldNoEventsAccepted",
    }
    for rule in found:
        assert ("record" in rule) != ("alert" in rule), rule
        assert isinstance(rule["expr"], str) and rule["expr"].strip(), rule
        assert balanced(rule["expr"]), rule["expr"]
        if "record" in rule:
            assert re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", rule["record"]), rule
        else:
            assert DURATION.match(rule["for"]), rule
            assert rule["labels"]["severity"] in {"info", "warning", "critical"}, rule
            assert rule["annotations"]["summary"], rule
    if shutil.which("promtool"):
        promtool("check", "rules", str(RULES))
        promtool("test", "rules", str(RULES.with_name("rules_test.yml")))


def promtool(*args: str) -> None:
    checked = subprocess.run(["promtool", *args], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_dashboard_queries_parse(tmp_path: Path) -> None:
    """Each panel query as a recording rule, for promtool's PromQL parser (where installed);
    otherwise their brackets balance."""
    exprs = dashboard_exprs()
    assert all(balanced(expr) for expr in exprs)
    if shutil.which("promtool"):
        as_rules = {
            "groups": [
                {
                    "name": "dashboard",
                    "rules": [
                        {"record": f"dashboard:q{i}", "expr": e} for i, e in enumerate(exprs)
                    ],
                }
            ]
        }
        path = tmp_path / "dashboard.yml"
        path.write_text(yaml.safe_dump(as_rules))
        promtool("check", "rules", str(path))


def test_every_metric_read_is_exported_or_recorded() -> None:
    names = exported()
    recorded = {r["record"] for r in rules() if "record" in r}
    assert "herald_worker_sends_total" in names and "herald_queue_messages" in names
    exprs = [r["expr"] for r in rules()] + dashboard_exprs()
    used = {name for expr in exprs for name in METRIC.findall(expr)}
    assert used, "no metric found in the rules and the dashboard"
    unknown = {n for n in used if n not in names and n not in recorded}
    assert not unknown, f"read but neither exported nor recorded: {sorted(unknown)}"
    # What an operator needs first is on the dashboard.
    dashboard_used = {name for expr in dashboard_exprs() for name in METRIC.findall(expr)}
    assert {
        "herald:sends:rate5m",
        "herald_queue_oldest_message_age_seconds",
        "herald:dlq_messages",
        "herald:end_to_end_latency_seconds:p99_5m",
    } <= dashboard_used


def test_the_pieces_point_at_each_other() -> None:
    scrape = yaml.safe_load((MONITORING / "prometheus" / "prometheus.yml").read_text())
    assert [Path(f).name for f in scrape["rule_files"]] == [RULES.name]
    [job] = scrape["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    datasources = yaml.safe_load(
        (MONITORING / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    uids = {d["uid"] for d in datasources["datasources"]}
    panels = json.loads(DASHBOARD.read_text())["panels"]
    assert panels and {p["datasource"]["uid"] for p in panels} <= uids
    assert len({p["id"] for p in panels}) == len(panels)
