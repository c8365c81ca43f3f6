"""Console pages over plain HTTP: filters, forms refused with the API's messages beside
their fields, and what each scope is offered."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.console.pages_rules import field_problems, form_fields, parse_form
from tests.conftest import Stack
from tests.console.conftest import csrf_of, new_key, sign_in


def post_follow(api: TestClient, user_id: str) -> str:
    body = {"type": "follow", "user_id": user_id, "data": {"actor": "Ana"}}
    resp = api.post("/events", json=body)
    assert resp.status_code == 202, resp.text
    return str(resp.json()["event_id"])


def test_events_filter_by_user_and_time(api: TestClient, signed_in: TestClient) -> None:
    mine, other = post_follow(api, "u-time"), post_follow(api, "u-else")
    page = signed_in.get("/console/events", params={"user_id": "u-time"})
    assert mine in page.text and other not in page.text
    later = signed_in.get("/console/events", params={"since": "2999-01-01T00:00"})
    assert mine not in later.text and "No events" in later.text
    earlier = signed_in.get("/console/events", params={"until": "2000-01-01T00:00"})
    assert mine not in earlier.text
    window = signed_in.get(
        "/console/events", params={"since": "2000-01-01T00:00", "until": "2999-01-01T00:00"}
    )
    assert mine in window.text and other in window.text


def test_a_bad_filter_is_named_beside_its_field(signed_in: TestClient) -> None:
    page = signed_in.get("/console/events", params={"user_id": "a b", "since": "yesterday"})
    assert page.status_code == 422
    assert 'id="user_id-problem"' in page.text and 'id="since-problem"' in page.text
    assert 'aria-describedby="user_id-problem"' in page.text


def test_every_event_status_is_offered_in_the_filter(signed_in: TestClient) -> None:
    from core.catalogue.models import EventStatus

    page = signed_in.get("/console/events").text
    for status in EventStatus:
        assert f"<option>{status.value}</option>" in page


def test_a_silence_with_a_bad_pattern_is_refused_beside_the_matcher(
    signed_in: TestClient,
) -> None:
    page = signed_in.get("/console/silences", params={"type": "alert.x", "dedupe_key": "k"})
    assert 'value="alert.x"' in page.text and 'value="k"' in page.text  # prefilled
    form = {
        "csrf": csrf_of(page.text),
        "m0_name": "dedupe_key",
        "m0_op": "=~",
        "m0_value": "(unclosed",
        "duration": "1h",
    }
    refused = signed_in.post("/console/silences", data=form)
    assert refused.status_code == 422
    assert 'id="m0_value-problem"' in refused.text and "RE2" in refused.text
    bad_duration = signed_in.post("/console/silences", data={**form, "m0_op": "=", "duration": "x"})
    assert bad_duration.status_code == 422 and 'id="duration-problem"' in bad_duration.text


def test_the_rule_form_maps_the_apis_messages_to_its_fields() -> None:
    names = [f["name"] for f in form_fields()]
    assert {"name", "schedule", "source", "condition", "for", "recipients"} <= set(names)
    body, problems = parse_form({"source": "{not json", "schedule": "every 5m"})
    assert "source" in problems and body == {"schedule": "every 5m"}
    mapped = field_problems(
        [(("source", "http", "url"), "bad url"), ((), "give exactly one"), (("nope",), "x")]
    )
    assert mapped == {"source": "http.url: bad url", "form": "give exactly one; x"}


def test_a_new_rule_is_refused_then_created(signed_in: TestClient) -> None:
    page = signed_in.get("/console/rules/new")
    form = {
        "csrf": csrf_of(page.text),
        "rule_id": "r-1",
        "name": "rows",
        "schedule": "every 5m",
        "source": '{"kind": "sql", "datasource": "missing", "query": "select 1"}',
        "condition": '{"kind": "any_rows"}',
        "recipients": '{"users": ["u-1"]}',
    }
    refused = signed_in.post("/console/rules", data=form)
    assert refused.status_code == 422
    assert 'id="source-problem"' in refused.text and "unknown data source" in refused.text
    form["source"] = '{"kind": "http", "url": "http://127.0.0.1:9/health"}'
    saved = signed_in.post("/console/rules", data=form, follow_redirects=False)
    assert saved.status_code == 303 and saved.headers["location"] == "/console/rules/r-1"
    assert "rows" in signed_in.get("/console/rules").text


def test_a_redrive_needs_its_confirmation(signed_in: TestClient) -> None:
    page = signed_in.get("/console/dead-letters/sms-normal/redrive")
    assert page.status_code == 200 and 'name="confirm"' in page.text
    resp = signed_in.post(
        "/console/dead-letters/sms-normal/redrive", data={"csrf": csrf_of(page.text)}
    )
    assert resp.status_code == 422
    unknown = signed_in.get("/console/dead-letters/no-such-queue")
    assert unknown.status_code == 404


def test_a_key_is_offered_only_the_pages_its_scopes_allow(
    browser_like: TestClient, stack: Stack
) -> None:
    sign_in(browser_like, new_key(stack, "events:read"))
    nav = browser_like.get("/console/events").text.split("</nav>")[0]
    assert "Events" in nav and "Rules" not in nav and "Dead letters" not in nav
    assert browser_like.get("/console/rules").status_code == 403
    alerts = browser_like.get("/console/alerts")
    assert alerts.status_code == 200 and "Acknowledge" not in alerts.text


def test_the_overview_charts_each_part_of_the_stats() -> None:
    from api.console.pages_ops import overview_charts

    summary = {
        "events": {"counts": {"SUCCESS": 8, "FAILED": 2, "SOMETHING_NEW": 1}},
        "notifications": {"sms": {"created": {}, "sends": {"sent": 10, "failed": 0}}},
        "end_to_end_seconds": {"sms": {"count": 10, "p50": 0.12, "p99": None}},
        "dlq_depths": {"herald-sms-normal-dlq": 3, "herald-email-normal-dlq": None},
    }
    charts = overview_charts(summary, "herald")
    events = {m.label: m.shown for m in charts["events"].marks}
    assert events == {"SUCCESS": "8", "FAILED": "2", "SOMETHING_NEW": "1"}
    assert [m.shown for m in charts["latency"].marks] == ["0.12 s", "n/a"]
    assert {m.label: m.width for m in charts["dlq"].marks} == {"email-normal": 0, "sms-normal": 150}
    assert [m.label for m in charts["sends"].marks] == ["sms failed", "sms sent"]


def test_a_rules_evaluations_chart_as_columns_by_outcome() -> None:
    from api.console.charts import columns

    chart = columns("evaluations", [("a", 10.0, "ok"), ("b", 40.0, "firing"), ("c", 0.0, "error")])
    assert [m.kind for m in chart.marks] == ["ok", "firing", "error"]
    assert [m.height for m in chart.marks] == [22, 90, 2]  # scaled to the longest, never empty
    assert chart.marks[1].shown == "40 (firing)"
