"""Listening rules' edges: what the API accepts, what a NOTIFY flood costs, and the
listening connection's limits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from alerting.listen_connection import connect
from alerting.listen_index import listening
from alerting.listen_runs import ListenRule, RunRequests, window_end
from alerting.listener import Listener
from alerting.rule_store import RuleStore
from alerting.rules import RuleIn
from alerting.sources import DataSources
from api.main import create_app
from core.catalogue.models import utcnow
from tests.alerting.conftest import PREFIX, Database
from tests.conftest import AUTH, Stack

RULE: dict[str, Any] = {
    "name": "Orders",
    "schedule": "every 5m",
    "source": {"kind": "sql", "datasource": "warehouse", "query": "SELECT 1 AS n"},
    "condition": {"kind": "any_rows"},
    "recipients": {"topic": "ops"},
    "listen": "orders_changed",
}


@pytest.fixture
def api(stack: Stack, pg_database: Database, tmp_path: Path) -> Iterator[TestClient]:
    urls = {pg_database.name: pg_database.url, "local": f"sqlite:///{tmp_path / 'l.db'}"}
    settings = stack.settings.model_copy(update={"datasources": json.dumps(urls)})
    with TestClient(create_app(settings, stack.clients), headers=AUTH) as client:
        yield client


def test_a_rule_listens_only_on_postgresql_and_a_plain_channel(api: TestClient) -> None:
    created = api.put("/rules/live", json=RULE)
    assert created.status_code == 201, created.text
    assert created.json()["listen"] == "orders_changed"
    assert created.json()["notify_initial"] is False
    refused = {
        "sqlite": {**RULE, "source": {**RULE["source"], "datasource": "local"}},
        "http": {**RULE, "source": {"kind": "http", "url": "http://127.0.0.1:9/"}},
        "quoted": {**RULE, "listen": 'orders"; DROP TABLE orders; --'},
        "long": {**RULE, "listen": "c" * 64},
        "upper": {**RULE, "listen": "Orders"},
    }
    for why, body in refused.items():
        resp = api.put(f"/rules/{why}", json=body)
        assert resp.status_code == 422, (why, resp.text)
        assert "listen" in resp.text, (why, resp.text)


def queued_runs(stack: Stack) -> list[dict[str, Any]]:
    raw = stack.receive_all(f"{PREFIX}-rules-normal") + stack.receive_all(
        f"{PREFIX}-rules-critical"
    )
    return [json.loads(m["Body"]) for m in raw]


def test_a_flooded_channel_costs_one_run_per_window(stack: Stack) -> None:
    runs = RunRequests(stack.clients, debounce=0.5)
    rules = [ListenRule("a", "c", "normal"), ListenRule("b", "c", "critical")]
    start = window_end(utcnow(), 0.5)  # the start of a window
    sent = 0
    for tick in range(300):  # 1,000 NOTIFYs a second for 3 s, flushed as time goes
        at = start + timedelta(milliseconds=10 * tick)
        for _ in range(10):
            runs.ask(rules, at, "notify")
        sent += runs.flush(at)
    sent += runs.flush(start + timedelta(seconds=4))
    queued = queued_runs(stack)
    assert sent == len(queued) == 2 * 6  # six windows of half a second, two rules
    for rule in ("a", "b"):
        ids = sorted(body["run"] for body in queued if body["rule_id"] == rule)
        assert len(set(ids)) == 6
    assert runs.pending() == 0
    # A send repeated (a retry, a second listener) names the same runs.
    runs.ask(rules[:1], start, "notify")
    runs.flush(start + timedelta(seconds=1))
    [again] = queued_runs(stack)
    assert again["run"] == min(b["run"] for b in queued if b["rule_id"] == "a")


def test_the_listening_connection_is_read_only_and_timed_out(
    stack: Stack, pg_database: Database
) -> None:
    settings = stack.settings.model_copy(
        update={"datasources": json.dumps({pg_database.name: pg_database.url})}
    )
    with connect(DataSources(settings), "warehouse", 3.0, 2.0) as conn:
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        assert conn.execute("SHOW statement_timeout").fetchone() == ("3s",)
        conn.execute("LISTEN orders_changed")  # LISTEN is allowed read-only
        with pytest.raises(Exception, match="read-only"):
            conn.execute("CREATE TABLE t (id int)")


def test_the_index_of_listening_rules_follows_the_rules(stack: Stack) -> None:
    table = stack.clients.names.table
    store = RuleStore(stack.clients.dynamodb, table, 8)

    def indexed() -> dict[str, str]:
        return {e["SK"]: e["channel"] for e in listening(stack.clients.dynamodb, table)}

    store.put("a", RuleIn.model_validate(RULE))
    store.put("b", RuleIn.model_validate({**RULE, "listen": None}))
    store.put("c", RuleIn.model_validate({**RULE, "listen": "other"}))
    assert indexed() == {"a": "orders_changed", "c": "other"}
    store.put("a", RuleIn.model_validate({**RULE, "enabled": False}))
    store.put("c", RuleIn.model_validate({**RULE, "listen": None}))
    store.put("b", RuleIn.model_validate(RULE))
    assert indexed() == {"b": "orders_changed"}
    store.delete("b")
    assert indexed() == {}


def test_a_stopping_listener_sends_the_runs_asked_for(stack: Stack) -> None:
    listener = Listener(stack.settings, stack.clients, owner="stopping")
    listener.runs.ask([ListenRule("late", "c", "normal")], utcnow(), "notify")
    listener.close()  # before the window ends: sent all the same
    [sent] = queued_runs(stack)
    assert (sent["rule_id"], sent["trigger"]) == ("late", "notify")


def test_a_listener_without_data_sources_reads_nothing(stack: Stack, pg_database: Database) -> None:
    RuleStore(stack.clients.dynamodb, stack.clients.names.table, 8).put(
        "live", RuleIn.model_validate(RULE)
    )
    urls = json.dumps({pg_database.name: pg_database.url})
    configured = stack.settings.model_copy(update={"datasources": urls})
    assert Listener(configured, stack.clients).load_rules() == {
        "warehouse": [ListenRule("live", "orders_changed", "normal")]
    }
    assert Listener(stack.settings, stack.clients).load_rules() == {}
