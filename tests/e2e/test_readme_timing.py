"""The README's deferral, delayed-event and cancel lines, run as written against the real
processes (the API, router, workers and due sender): the quiet-hours SMS waits SCHEDULED
while the email goes, the delayed event waits SCHEDULED, is listed, and its cancel ends it
CANCELLED with nothing sent."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from tests.e2e.conftest import Herald
from tests.e2e.test_quick_start import DEV_KEY, bash_block_after, run_as_documented

MARKER = "Later, not never"


def test_the_readme_defers_delays_and_cancels(herald: Herald) -> None:
    user = herald.api.put(
        "/users/u-42",
        json={"phone": "+14155550123", "email": "ana@example.com", "timezone": "Europe/Berlin"},
    )
    assert user.status_code in (200, 201), user.text
    block = f"KEY='X-API-Key: {DEV_KEY}'\n" + bash_block_after(MARKER)
    answers = run_as_documented(herald, block)
    now_event, delayed, listing = answers[1], answers[2], answers[3]
    assert now_event["status"] == "START", answers
    assert delayed["status"] == "SCHEDULED", answers
    assert delayed["event_id"] in [e["event_id"] for e in listing["items"]]

    # The line that needs the delayed event's id: the cancel.
    cancel = next(line for line in block.splitlines() if "/cancel" in line)
    [cancelled] = run_as_documented(
        herald, block.splitlines()[0] + "\n" + cancel.replace("<event_id>", delayed["event_id"])
    )
    assert cancelled["status"] == "CANCELLED"
    assert herald.event(delayed["event_id"])["status"] == "CANCELLED"

    email = herald.wait_for_notification(now_event["event_id"], "email", {"SENT", "FAILED"})
    assert email["status"] == "SENT", email
    sms = {n["channel"]: n for n in herald.event(now_event["event_id"])["notifications"]}["sms"]
    if datetime.now(ZoneInfo("Europe/Berlin")).strftime("%H:%M") != "23:59":  # in the window
        assert sms["status"] == "SCHEDULED" and sms["deliver_at"], sms
