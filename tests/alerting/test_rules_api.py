"""The rules API: create, read, list, delete, validation, evaluations, test runs; HTTP
checks against a local server; data sources from AWS Secrets Manager (on the emulator)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from alerting.evaluation import evaluate_rule, run_source
from alerting.rules import Rule
from alerting.sources import DataSources
from api.main import create_app
from core.catalogue.models import iso, utcnow
from core.platform.settings import Settings
from tests.alerting.conftest import Database, add_user, channel_messages, route_pending
from tests.conftest import AUTH, Stack


@pytest.fixture
def warehouse(tmp_path: Path) -> Database:
    db = Database("warehouse", f"sqlite:///{tmp_path / 'w.db'}")
    db.execute(
        "CREATE TABLE failures (pipeline VARCHAR(50), error VARCHAR(200))",
        "INSERT INTO failures VALUES ('daily-sales', 'timeout')",
    )
    return db


@pytest.fixture
def api(stack: Stack, warehouse: Database) -> Iterator[TestClient]:
    settings = stack.settings.model_copy(
        update={"datasources": json.dumps({warehouse.name: warehouse.url})}
    )
    with TestClient(create_app(settings, stack.clients), headers=AUTH) as client:
        yield client


RULE: dict[str, Any] = {
    "name": "Failed pipelines",
    "description": "Any failed run in the last hour",
    "schedule": "*/5 * * * *",
    "timezone": "Europe/Berlin",
    "source": {"kind": "sql", "datasource": "warehouse", "query": "SELECT * FROM failures"},
    "condition": {"kind": "any_rows"},
    "for": "5m",
    "severity": "critical",
    "event_type": "alert.pipeline_failed",
    "recipients": {"users": ["oncall"]},
}


def test_rule_crud(api: TestClient) -> None:
    created = api.put("/rules/failed-pipelines", json=RULE)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["for"] == "5m" and body["version"] == 1 and body["enabled"] is True
    replaced = api.put("/rules/failed-pipelines", json={**RULE, "enabled": False})
    assert replaced.status_code == 200 and replaced.json()["version"] == 2
    assert api.get("/rules/failed-pipelines").json()["enabled"] is False
    api.put("/rules/another", json=RULE)
    assert [r["id"] for r in api.get("/rules").json()["items"]] == ["another", "failed-pipelines"]
    assert api.delete("/rules/failed-pipelines").status_code == 204
    assert api.get("/rules/failed-pipelines").status_code == 404
    assert api.delete("/rules/failed-pipelines").status_code == 404
    assert api.get("/rules/failed-pipelines/evaluations").status_code == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"schedule": "every 1s"}, "schedule"),
        ({"schedule": "at noon"}, "schedule"),
        ({"schedule": "every 500w"}, "schedule"),
        ({"schedule": "* * * * * *"}, "schedule"),
        ({"repeat_interval": "9999999999d"}, "repeat_interval"),
        ({"data": {"text": "x" * 20_000}}, "data"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"for": "soon"}, "for"),
        ({"severity": "page"}, "severity"),
        ({"event_type": "like"}, "event_type"),
        ({"recipients": {}}, "recipients"),
        ({"recipients": {"to": {"sms": ["12"]}}}, "recipients.to.sms.0"),
        ({"condition": {"kind": "threshold", "column": "x", "op": "~", "value": 1}}, "op"),
        ({"source": {"kind": "sql", "datasource": "nope", "query": "SELECT 1"}}, "datasource"),
        ({"source": {"kind": "sql", "datasource": "warehouse", "url": "x"}}, "source.sql"),
        ({"source": {"kind": "http", "url": "file:///etc/passwd"}}, "source.http.url"),
    ],
)
def test_invalid_rules_are_422_naming_the_field(
    api: TestClient, change: dict[str, Any], field: str
) -> None:
    resp = api.put("/rules/r", json={**RULE, **change})
    assert resp.status_code == 422, resp.text
    assert field in resp.json()["message"]


def test_test_run_shows_what_would_be_sent_and_sends_only_with_send(
    stack: Stack, api: TestClient
) -> None:
    add_user(stack, "oncall", email="oncall@example.com")
    api.put("/rules/failed-pipelines", json={**RULE, "for": "0s"})
    dry = api.post("/rules/failed-pipelines/test")
    assert dry.status_code == 200, dry.text
    result = dry.json()
    assert result["outcome"] == "firing" and result["sent"] == []
    [would] = result["would_send"]
    assert would["dedupe_key"] == "rule:failed-pipelines@oncall"
    assert would["recipient"] == "user:oncall" and would["priority"] == "critical"
    assert would["email_subject"] == "[CRITICAL] Pipeline daily-sales failed"
    assert api.get("/rules/failed-pipelines/evaluations").json()["items"] == []

    router_queue = stack.clients.names.router_queue("critical")
    assert stack.receive_all(router_queue) == []  # the dry run published nothing

    sent = api.post("/rules/failed-pipelines/test", params={"send": "true"}).json()
    [event_id] = sent["sent"]
    event = api.get(f"/events/{event_id}").json()
    assert event["data"]["test"] is True and event["dedupe_key"] is None


def test_test_send_is_marked_as_a_test_in_the_notification(stack: Stack, api: TestClient) -> None:
    from listeners.router import Router

    add_user(stack, "oncall", email="oncall@example.com")
    api.put("/rules/r", json={**RULE, "event_type": "alert.rule"})
    api.post("/rules/r/test", params={"send": "true"})
    route_pending(stack, Router(stack.settings, stack.clients))
    [email] = [json.loads(b) for b in channel_messages(stack, "email")]
    assert email["content"]["subject"].startswith("[TEST] ")


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(0.3)
        status = 503 if self.path == "/down" else 200
        body = json.dumps({"data": {"queue": {"depth": 42}}}).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def http_service() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def http_rule(url: str, condition: dict[str, Any], **source: Any) -> Rule:
    now = iso(utcnow())
    return Rule.model_validate(
        {
            "id": "h",
            "name": "Health",
            "schedule": "every 1m",
            "source": {"kind": "http", "url": url, **source},
            "condition": condition,
            "recipients": {"topic": "ops"},
            "created_at": now,
            "updated_at": now,
        }
    )


def check(rule: Rule) -> Any:
    sources = DataSources(Settings(_env_file=None))  # type: ignore[call-arg]
    return evaluate_rule(rule, run_source(rule, sources, 5), {}, utcnow(), "run")


def test_http_checks_status_latency_and_a_json_value(http_service: str) -> None:
    depth = {"kind": "threshold", "column": "value", "op": ">", "value": 40}
    assert check(http_rule(f"{http_service}/ok", depth, json_path="data.queue.depth")).outcome == (
        "firing"
    )
    calm = {**depth, "value": 50}
    assert check(http_rule(f"{http_service}/ok", calm, json_path="data.queue.depth")).outcome == (
        "ok"
    )
    down = check(http_rule(f"{http_service}/down", {"kind": "unreachable"}))
    assert down.outcome == "firing" and down.error == "HTTP 503"
    assert check(http_rule(f"{http_service}/ok", {"kind": "unreachable"})).outcome == "ok"
    slow = check(http_rule(f"{http_service}/slow", {"kind": "unreachable", "slow": "100ms"}))
    assert slow.outcome == "firing" and "slow" in slow.summary
    refused = check(http_rule("http://127.0.0.1:9/", {"kind": "unreachable"}))
    assert refused.outcome == "firing" and "ConnectError" in str(refused.error)


def test_data_source_from_secrets_manager_and_no_password_in_errors(
    stack: Stack, postgres_url: str, warehouse: Database
) -> None:
    secrets = stack.clients.client("secretsmanager")
    secrets.create_secret(Name="herald/warehouse", SecretString=warehouse.url)
    wrong = postgres_url.replace("herald@", "nobody:s3cret-pass@") + "x"
    secrets.create_secret(Name="herald/broken", SecretString=wrong)
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        datasources=json.dumps(
            {
                "warehouse": "secretsmanager:herald/warehouse",
                "broken": "secretsmanager:herald/broken",
            }
        ),
    )
    sources = DataSources(settings, secrets)
    rule = Rule.model_validate({**RULE, "id": "s", "created_at": "x", "updated_at": "x"})
    assert run_source(rule, sources, 5).rows == [{"pipeline": "daily-sales", "error": "timeout"}]
    broken = rule.model_copy(
        update={"source": rule.source.model_copy(update={"datasource": "broken"})}
    )
    failed = run_source(broken, sources, 5)
    assert failed.error is not None and "s3cret-pass" not in failed.error
    assert repr(settings).count("secretsmanager") == 0  # settings never print data sources
