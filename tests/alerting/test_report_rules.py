"""Report rules end to end against PostgreSQL, the emulator and the provider sandbox: a run
sends one email with the result as an HTML table and as CSV and PDF attachments, rendered
by the email worker; every run sends again; truncation and empty results are stated."""

from __future__ import annotations

import csv
import io
import re
import zlib
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from api.main import create_app
from core.catalogue.models import utcnow
from tests.alerting.conftest import Clock, Database, Pipeline, add_user, route_pending
from tests.conftest import AUTH, Stack

DAILY = "SELECT day, plays, artist FROM daily_plays ORDER BY day"  # a time and a numeric column


@pytest.fixture
def warehouse(pg_database: Database) -> Database:
    pg_database.execute(
        "CREATE TABLE daily_plays (day DATE, plays INTEGER, artist TEXT)",
        "INSERT INTO daily_plays SELECT DATE '2030-01-01' + g, 100 + g * 7 % 13, "
        "'Artist ' || g FROM generate_series(0, 29) g",
    )
    return pg_database


@pytest.fixture
def pipeline(stack: Stack, sandbox: Any, warehouse: Database) -> Iterator[Pipeline]:
    clock = Clock(utcnow().replace(second=0, microsecond=0))
    built = Pipeline(stack, sandbox, clock, {warehouse.name: warehouse.url})
    yield built
    built.close()


@pytest.fixture
def client(stack: Stack, pipeline: Pipeline) -> Iterator[TestClient]:
    with TestClient(create_app(pipeline.settings, stack.clients), headers=AUTH) as test_client:
        yield test_client


def report_rule(query: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "Daily plays",
        "schedule": "every 1m",
        "source": {"kind": "sql", "datasource": "warehouse", "query": query},
        "condition": {"kind": "report"},
        "recipients": {"users": ["analyst"]},
        **extra,
    }


def put_report(client: TestClient, query: str, **extra: Any) -> None:
    resp = client.put("/rules/daily", json=report_rule(query, **extra))
    assert resp.status_code in (200, 201), resp.text
    assert resp.json()["event_type"] == "trend.report"


def emails(sandbox: Any) -> list[dict[str, Any]]:
    return [m for m in sandbox.messages("sendgrid") if m["status"] == 202]


def html_of(message: dict[str, Any]) -> str:
    return next(c["value"] for c in message["json"]["content"] if c["type"] == "text/html")


def text_of(message: dict[str, Any]) -> str:
    return next(c["value"] for c in message["json"]["content"] if c["type"] == "text/plain")


def attachment(sandbox: Any, message: dict[str, Any], index: int) -> httpx.Response:
    """One attachment's bytes through the sandbox's route, as a tool would read them."""
    return httpx.get(f"{sandbox.url}/sandbox/messages/{message['seq']}/attachments/{index}")


def query_rows(database: Database, query: str) -> list[list[str]]:
    """The query's rows as the CSV writes them: text, NULL as empty."""
    engine = create_engine(database.url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(query)).all()
    finally:
        engine.dispose()
    return [
        ["" if v is None else v.isoformat() if hasattr(v, "isoformat") else str(v) for v in r]
        for r in rows
    ]


def path_segments(pdf: bytes) -> int:
    """Straight segments drawn (`x y l`) in the PDF's page streams: a chart is lines."""
    streams = re.findall(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S)
    return sum(len(re.findall(rb"[\d.]+ [\d.]+ l\s", zlib.decompress(s))) for s in streams)


def test_a_report_run_emails_the_table_with_csv_and_pdf_and_every_run_sends_again(
    stack: Stack, client: TestClient, pipeline: Pipeline, warehouse: Database, sandbox: Any
) -> None:
    add_user(stack, "analyst", email="analyst@example.com")
    put_report(client, DAILY)
    assert pipeline.tick() == 1
    [sent] = emails(sandbox)
    assert [to["email"] for p in sent["json"]["personalizations"] for to in p["to"]] == [
        "analyst@example.com"
    ]
    assert sent["json"]["subject"] == "Daily plays: 30 row(s)"
    html = html_of(sent)
    assert "<table" in html and "<th" in html and "Artist 0" in html and "2030-01-01" in html
    day = pipeline.clock.now.date().isoformat()
    assert [(a["filename"], a["type"], a["disposition"]) for a in sent["attachments"]] == [
        (f"Daily-plays-{day}.csv", "text/csv", "attachment"),
        (f"Daily-plays-{day}.pdf", "application/pdf", "attachment"),
    ]
    assert all(a["size"] > 0 for a in sent["attachments"])
    assert "content" not in sent["json"]["attachments"][0]  # listed, not repeated

    csv_file = attachment(sandbox, sent, 0)
    assert csv_file.headers["content-type"] == "text/csv"
    assert len(csv_file.content) == sent["attachments"][0]["size"]
    header, *rows = list(csv.reader(io.StringIO(csv_file.content.decode())))
    assert header == ["day", "plays", "artist"]
    assert rows == query_rows(warehouse, DAILY)

    pdf = attachment(sandbox, sent, 1).content
    assert pdf.startswith(b"%PDF")
    assert path_segments(pdf) >= 29  # the 30 days' line, besides axes and grid

    pipeline.tick()
    pipeline.tick()
    assert len(emails(sandbox)) == 3  # each run is a report of its own
    evaluations = client.get("/rules/daily/evaluations").json()["items"]
    assert [e["outcome"] for e in evaluations] == ["firing"] * 3
    assert all(len(e["events"]) == 1 and e["events"][0]["dedupe_key"] is None for e in evaluations)
    assert client.get("/alerts").json()["items"] == []  # a report is no alert


def test_a_report_past_the_byte_budget_says_it_is_truncated(
    stack: Stack, client: TestClient, pipeline: Pipeline, sandbox: Any
) -> None:
    add_user(stack, "analyst", email="analyst@example.com")
    # 1,000 rows of about 260 bytes: twice what a report carries.
    put_report(client, "SELECT g AS n, repeat('x', 250) AS filler FROM generate_series(1, 1000) g")
    pipeline.tick()
    [sent] = emails(sandbox)
    assert "Truncated:" in html_of(sent) and "of 1000 rows are in this report" in text_of(sent)
    lines = list(csv.reader(io.StringIO(attachment(sandbox, sent, 0).content.decode())))
    assert lines[-1][0].startswith("# Truncated: ") and "of 1000 rows" in lines[-1][0]
    kept = lines[1:-1]
    assert 300 < len(kept) < 1000
    assert [int(row[0]) for row in kept] == list(range(1, len(kept) + 1))
    assert attachment(sandbox, sent, 1).content.startswith(b"%PDF")


def test_a_report_of_no_rows_still_sends_saying_so(
    stack: Stack, client: TestClient, pipeline: Pipeline, sandbox: Any
) -> None:
    add_user(stack, "analyst", email="analyst@example.com")
    put_report(client, "SELECT artist, plays FROM daily_plays WHERE plays < 0")
    pipeline.tick()
    [sent] = emails(sandbox)
    assert sent["json"]["subject"] == "Daily plays: no rows"
    assert "The query returned no rows." in html_of(sent)
    assert attachment(sandbox, sent, 0).content.decode().strip() == "# The query returned no rows."
    pdf = attachment(sandbox, sent, 1).content
    assert pdf.startswith(b"%PDF") and path_segments(pdf) == 0  # no chart of nothing


def test_a_result_without_a_time_column_is_a_pdf_table_without_a_chart(
    stack: Stack, client: TestClient, pipeline: Pipeline, sandbox: Any
) -> None:
    add_user(stack, "analyst", email="analyst@example.com")
    put_report(client, "SELECT artist, plays FROM daily_plays ORDER BY plays DESC LIMIT 5")
    pipeline.tick()
    [sent] = emails(sandbox)
    pdf = attachment(sandbox, sent, 1).content
    assert pdf.startswith(b"%PDF") and path_segments(pdf) == 0
    assert len(list(csv.reader(io.StringIO(attachment(sandbox, sent, 0).content.decode())))) == 6


def test_a_daily_report_at_eight_in_its_time_zone(client: TestClient) -> None:
    from alerting.schedule import next_due

    put_report(client, DAILY, schedule="0 8 * * *", timezone="Europe/Berlin")
    rule = client.get("/rules/daily").json()
    assert (rule["schedule"], rule["timezone"]) == ("0 8 * * *", "Europe/Berlin")
    winter = next_due(
        rule["schedule"], rule["timezone"], datetime.fromisoformat("2030-01-15T12:00Z")
    )
    summer = next_due(
        rule["schedule"], rule["timezone"], datetime.fromisoformat("2030-07-15T12:00Z")
    )
    assert (winter.isoformat(), summer.isoformat()) == (
        "2030-01-16T07:00:00+00:00",
        "2030-07-16T06:00:00+00:00",
    )


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"event_type": "alert.rule"}, "event_type: a report rule sends trend.report"),
        ({"condition": {"kind": "report", "min_rows": 1}}, "min_rows"),
    ],
)
def test_a_report_rule_that_does_not_fit_is_a_422_naming_the_field(
    client: TestClient, change: dict[str, Any], words: str
) -> None:
    resp = client.put("/rules/bad", json={**report_rule(DAILY), **change})
    assert resp.status_code == 422
    assert words in resp.text


def test_only_a_report_rule_sends_the_report_type(client: TestClient) -> None:
    body = {**report_rule(DAILY), "condition": {"kind": "any_rows"}, "event_type": "trend.report"}
    resp = client.put("/rules/bad", json=body)
    assert resp.status_code == 422 and "event_type: trend.report needs condition" in resp.text


def test_a_report_event_from_the_api_with_a_bad_table_fails_with_the_reason(
    stack: Stack, client: TestClient, pipeline: Pipeline, sandbox: Any
) -> None:
    add_user(stack, "analyst", email="analyst@example.com")
    data = {"rule": "Hand made", "summary": "2 row(s)"}
    bad = {**data, "report": {"columns": ["a"], "rows": [[1, 2]]}}
    ids = []
    for body in (bad, data):
        resp = client.post(
            "/events", json={"type": "trend.report", "user_id": "analyst", "data": body}
        )
        assert resp.status_code == 202, resp.text
        ids.append(resp.json()["event_id"])
    route_pending(stack, pipeline.router)
    pipeline.deliver_pending()
    failed = client.get(f"/events/{ids[0]}").json()["notifications"]
    [email] = [n for n in failed if n["channel"] == "email"]
    assert email["status"] == "FAILED"
    assert "data.report.rows.0: 2 values for 1 columns" in email["last_error"]
    [sent] = emails(sandbox)  # the event without a table: the email alone
    assert sent["json"]["subject"] == "Hand made: 2 row(s)" and "attachments" not in sent


def test_a_test_send_of_a_report_rule_is_a_marked_report_with_its_files(
    stack: Stack, client: TestClient, pipeline: Pipeline, sandbox: Any
) -> None:
    add_user(stack, "analyst", email="analyst@example.com")
    put_report(client, DAILY)
    tested = client.post("/rules/daily/test").json()
    assert tested["outcome"] == "firing"
    assert [w["email_subject"] for w in tested["would_send"]] == ["Daily plays: 30 row(s)"]
    assert emails(sandbox) == []  # a preview sends nothing
    assert client.post("/rules/daily/test", params={"send": "true"}).status_code == 200
    route_pending(stack, pipeline.router)
    pipeline.deliver_pending()
    [sent] = emails(sandbox)
    assert sent["json"]["subject"] == "[TEST] Daily plays: 30 row(s)"
    assert [a["type"] for a in sent["attachments"]] == ["text/csv", "application/pdf"]
