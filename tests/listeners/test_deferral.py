"""Deferred notifications against the emulator: quiet hours defer, the due sender releases
them rendered as things are then, a cancel and a release never both win, and a due
sender killed mid-claim loses and doubles nothing."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from core.catalogue.event_types import EVENT_TYPES
from core.catalogue.models import Event, EventStatus, NotificationMessage, iso, utcnow
from core.directory.profiles import ProfileFields
from core.ledger.publisher import publish_events
from core.timing.due_claims import DueClaims
from core.timing.due_work import DueStore, DueWork, bucket_of, shard_of
from core.timing.waiting_events import WaitingEvents
from listeners.due_handlers import build_deferral, build_due_handlers
from listeners.due_sender import DueSender
from listeners.reconciler import Reconciler
from tests.conftest import Stack
from tests.factories import claim, ledger_of
from tests.factories import record as record_event
from tests.listeners.test_router import (
    ARN,
    LOGIN,
    ROUTER_CRITICAL,
    add_user,
    drain,
    post_event,
    route_all,
    router,
    seed_subscribers,
    stored,
    user_store,
)

TREND = {"chart": "Global Top 50", "artist": "Nova"}
TYPE = "trend.top_artist_changed"


def quiet_now(now: datetime, ends_in: timedelta) -> dict[str, str]:
    """A quiet-hours window (UTC) that `now` is in and that ends `ends_in` later."""
    start = (now - timedelta(minutes=30)).strftime("%H:%M")
    end = (now + ends_in).strftime("%H:%M")
    return {"start": start, "end": end}


def waiting_user(stack: Stack, user_id: str, channels: list[str], ends_in: timedelta) -> None:
    add_user(
        stack,
        user_id,
        {"categories": {"trend": channels}, "quiet_hours": quiet_now(utcnow(), ends_in)},
        email=f"{user_id}@example.com",
        push_endpoints=[ARN.format(user_id)],
    )


def sender(stack: Stack, at: datetime, **kwargs: Any) -> DueSender:
    due = DueStore(stack.clients.dynamodb, stack.clients.names.table, stack.settings.due_shards)
    handlers = build_due_handlers(stack.settings, stack.clients, due)
    return DueSender(stack.settings, stack.clients, handlers, clock=lambda: at, **kwargs)


def waiting(stack: Stack) -> WaitingEvents:
    return WaitingEvents(stack.clients.dynamodb, stack.clients.names.table)


def test_quiet_hours_defer_and_the_due_sender_sends_rendered_at_the_windows_end(
    stack: Stack,
) -> None:
    waiting_user(stack, "u-1", ["push", "email"], timedelta(minutes=2))
    event = post_event(stack, TYPE, TREND, user_id="u-1")
    assert route_all(stack, router(stack, utcnow()))
    record, notes = stored(stack, event.event_id)
    assert notes["push"]["status"] == "SCHEDULED"
    deliver_at = datetime.fromisoformat(notes["push"]["deliver_at"].replace("Z", "+00:00"))
    assert timedelta(0) < deliver_at - utcnow() <= timedelta(minutes=2)
    assert notes["email"]["status"] == "QUEUED"  # email does not ring: sent now
    assert record.status is EventStatus.PROCESSING  # the email is on its way
    assert drain(stack, "push-normal") == []
    assert len(drain(stack, "email-normal")) == 1

    # Before its time nothing is handed out; after it, once, rendered.
    assert sender(stack, deliver_at - timedelta(seconds=1)).run_pass().handed == 0
    assert sender(stack, deliver_at + timedelta(seconds=1)).run_pass().handed == 1
    [pushed] = drain(stack, "push-normal")
    assert pushed["notification_id"] == f"{event.event_id}:push:u-1"
    assert "Nova" in pushed["content"]["body"]
    _, notes = stored(stack, event.event_id)
    assert notes["push"]["status"] == "QUEUED"
    assert sender(stack, deliver_at + timedelta(seconds=2)).run_pass().handed == 0


def test_skip_mode_and_critical_events_do_not_wait(stack: Stack) -> None:
    window = {**quiet_now(utcnow(), timedelta(minutes=5)), "mode": "skip"}
    add_user(
        stack,
        "u-2",
        {"categories": {"trend": ["push"]}, "quiet_hours": window},
        push_endpoints=[ARN.format("u-2")],
    )
    event = post_event(stack, TYPE, TREND, user_id="u-2")
    assert route_all(stack, router(stack, utcnow()))
    _, notes = stored(stack, event.event_id)
    assert notes["push"]["status"] == "SKIPPED"
    assert notes["push"]["last_error"].startswith("quiet hours")


def test_an_event_whose_notifications_all_wait_is_scheduled_and_a_cancel_sends_nothing(
    stack: Stack,
) -> None:
    waiting_user(stack, "u-3", ["push"], timedelta(minutes=2))
    event = post_event(stack, TYPE, TREND, user_id="u-3")
    assert route_all(stack, router(stack, utcnow()))
    record, notes = stored(stack, event.event_id)
    assert record.status is EventStatus.SCHEDULED
    deliver_at = datetime.fromisoformat(notes["push"]["deliver_at"].replace("Z", "+00:00"))

    assert waiting(stack).cancel(event.event_id) is None
    assert waiting(stack).cancel(event.event_id) is None  # a repeat is no error
    DueStore(stack.clients.dynamodb, stack.clients.names.table, stack.settings.due_shards).schedule(
        DueWork(kind="cancel", ref=event.event_id, due_at=utcnow(), tenant="")
    )
    sender(stack, deliver_at + timedelta(seconds=1)).run_pass()
    record, notes = stored(stack, event.event_id)
    assert record.status is EventStatus.CANCELLED
    assert notes["push"]["status"] == "CANCELLED"
    assert drain(stack, "push-normal") == []


def test_a_release_first_refuses_the_cancel(stack: Stack) -> None:
    waiting_user(stack, "u-4", ["push"], timedelta(minutes=1))
    event = post_event(stack, TYPE, TREND, user_id="u-4")
    assert route_all(stack, router(stack, utcnow()))
    assert stored(stack, event.event_id)[0].status is EventStatus.SCHEDULED
    assert sender(stack, utcnow() + timedelta(minutes=3)).run_pass().handed == 1
    assert waiting(stack).cancel(event.event_id) == "PROCESSING"
    assert len(drain(stack, "push-normal")) == 1


def race(stack: Stack, release: Any, event_id: str) -> dict[str, Any]:
    """A release and a cancel started together; what the cancel answered."""
    gate = threading.Barrier(2)
    outcome: dict[str, Any] = {}

    def releasing() -> None:
        gate.wait()
        release()

    def cancelling() -> None:
        gate.wait()
        outcome["cancel"] = waiting(stack).cancel(event_id)

    threads = [threading.Thread(target=releasing), threading.Thread(target=cancelling)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcome


def test_a_cancel_racing_the_release_never_both_win(stack: Stack) -> None:
    deferral = build_deferral(stack.settings, stack.clients)
    for n in range(4):
        user = f"u-race-{n}"
        waiting_user(stack, user, ["push"], timedelta(minutes=1))
        event = post_event(stack, TYPE, TREND, user_id=user)
        assert route_all(stack, router(stack, utcnow()))
        work = DueWork(
            kind="notification",
            ref=f"{event.event_id}:push:{user}",
            due_at=utcnow(),
            tenant="",
            data={"record_shards": 1, "tally_shards": 1},
        )
        outcome = race(stack, partial(deferral.release, work), event.event_id)
        record, notes = stored(stack, event.event_id)
        sent = drain(stack, "push-normal")
        if outcome["cancel"] is None:  # the cancel won: nothing goes out, ever
            assert record.status is EventStatus.CANCELLED
            assert notes["push"]["status"] == "CANCELLED"
            assert sent == []
        else:  # the release won: the cancel was refused
            assert outcome["cancel"] == "PROCESSING"
            assert notes["push"]["status"] == "QUEUED"
            assert len(sent) == 1


def test_a_due_sender_killed_mid_claim_loses_and_doubles_nothing(stack: Stack) -> None:
    waiting_user(stack, "u-5", ["push"], timedelta(minutes=1))
    event = post_event(stack, TYPE, TREND, user_id="u-5")
    assert route_all(stack, router(stack, utcnow()))
    _, notes = stored(stack, event.event_id)
    deliver_at = datetime.fromisoformat(notes["push"]["deliver_at"].replace("Z", "+00:00"))
    ref = f"{event.event_id}:push:u-5"
    work = DueWork(kind="notification", ref=ref, due_at=deliver_at, tenant="")
    bucket = bucket_of(deliver_at)
    shard = shard_of(work.kind, work.ref, stack.settings.due_shards)

    # Sender A claims the shard, runs the handler (the record is released and its message
    # sent to the queue) and dies before deleting the item or giving the lease back.
    late = deliver_at + timedelta(seconds=1)
    dead = DueClaims(stack.clients.dynamodb, stack.clients.names.table, "sender-a")
    assert dead.claim(bucket, shard, late, stack.settings.due_lease_seconds)
    build_deferral(stack.settings, stack.clients).release(
        DueWork(**{**work.__dict__, "data": {"record_shards": 1, "tally_shards": 1}})
    )

    # Sender B cannot take the shard while A's lease holds; once it lapses it hands the
    # item out again, and the handler finds the record released: nothing happens twice.
    assert sender(stack, late, owner="sender-b").run_pass().handed == 0
    lapsed = late + timedelta(seconds=stack.settings.due_lease_seconds + 1)
    assert sender(stack, lapsed, owner="sender-b").run_pass().handed == 1
    assert sender(stack, lapsed, owner="sender-b").run_pass().handed == 0
    messages = drain(stack, "push-normal")
    assert {m["notification_id"] for m in messages} == {ref}
    _, notes = stored(stack, event.event_id)
    assert [h["status"] for h in notes["push"]["history"]] == ["SCHEDULED", "QUEUED"]
    # Two messages, one send: the worker's claim lets one through.
    ledger = ledger_of(stack)
    claims = [claim(ledger, NotificationMessage.model_validate(m)) for m in messages]
    assert sum(c is not None for c in claims) == 1


def test_an_idle_sender_sleeps_until_the_next_due_time_it_knows(stack: Stack) -> None:
    now = datetime.now(UTC).replace(second=5, microsecond=0)
    due = DueStore(stack.clients.dynamodb, stack.clients.names.table, 1, clock=lambda: now)
    due.schedule(DueWork(kind="probe", ref="p-1", due_at=now + timedelta(seconds=20), tenant=""))
    single = stack.settings.model_copy(update={"due_shards": 1, "due_idle_max_seconds": 60})
    quiet = DueSender(single, stack.clients, {"probe": lambda _: None}, clock=lambda: now)
    stats = quiet.run_pass()
    assert stats.handed == 0
    assert stats.next_due == now + timedelta(seconds=20)
    assert quiet.pause(stats, 30.0) == 20.0


def test_the_reconciler_never_takes_a_scheduled_record_for_stranded(stack: Stack) -> None:
    waiting_user(stack, "u-6", ["push"], timedelta(minutes=2))
    event = post_event(stack, TYPE, TREND, user_id="u-6")
    assert route_all(stack, router(stack, utcnow()))
    # As if the router had died before parking it: PROCESSING with only a SCHEDULED record.
    statuses = ledger_of(stack).event_status
    assert statuses.transition(event.event_id, EventStatus.SCHEDULED, EventStatus.PROCESSING)
    eager = stack.settings.model_copy(
        update={"reconcile_grace_seconds": 0.0, "reconcile_stranded_seconds": 0.0}
    )
    report = Reconciler(eager, stack.clients).run_pass()
    assert (report.repaired, report.stranded_failed) == (0, 0)
    record, notes = stored(stack, event.event_id)
    assert record.status is EventStatus.PROCESSING
    assert notes["push"]["status"] == "SCHEDULED"


def test_send_at_local_holds_each_subscriber_to_their_own_clock(stack: Stack) -> None:
    seed_subscribers(stack, "charts.local", ["tz-tokyo", "tz-berlin"], "email")
    for user_id, zone in (("tz-tokyo", "Asia/Tokyo"), ("tz-berlin", "Europe/Berlin")):
        store = user_store(stack)
        profile = store.get(user_id)
        assert profile is not None
        store.put_profile(user_id, ProfileFields(email=profile.email, timezone=zone))
    spec = EVENT_TYPES[TYPE]
    event = Event(
        event_id=str(uuid.uuid4()),
        type=TYPE,
        category=spec.category,
        priority=spec.priority,
        topic="charts.local",
        data=TREND,
        created_at=iso(utcnow()),
        send_at_local="09:00",
    )
    record_event(ledger_of(stack), event)
    assert publish_events(stack.clients.sns, stack.clients.topic_arn, [event]) == {}
    assert route_all(stack, router(stack, utcnow()))
    found = ledger_of(stack).event_reads.get(event.event_id)
    assert found is not None
    record, notes = found
    assert record.status is EventStatus.SCHEDULED  # a topic's fan-out parked from its tally
    due = {n["recipient_id"]: n["deliver_at"] for n in notes}
    for user_id, zone in (("tz-tokyo", "Asia/Tokyo"), ("tz-berlin", "Europe/Berlin")):
        at = datetime.fromisoformat(due[user_id].replace("Z", "+00:00")).astimezone(ZoneInfo(zone))
        assert (at.hour, at.minute) == (9, 0)
        assert timedelta(0) < at - utcnow() <= timedelta(days=1)
    assert drain(stack, "email-normal") == []


def test_a_window_ending_in_the_spring_forward_gap_defers_to_the_gaps_end(stack: Stack) -> None:
    add_user(
        stack,
        "u-ny",
        {"categories": {"trend": ["sms"]}, "quiet_hours": {"start": "22:00", "end": "02:30"}},
        phone="+14155550199",
        timezone="America/New_York",
    )
    event = post_event(stack, TYPE, TREND, user_id="u-ny")
    late = datetime(2026, 3, 8, 4, 0, tzinfo=UTC)  # 23:00 EST on 2026-03-07
    assert route_all(stack, router(stack, late))
    _, notes = stored(stack, event.event_id)
    assert notes["sms"]["status"] == "SCHEDULED"
    # 02:30 does not exist that night: the clocks go from 02:00 EST to 03:00 EDT.
    assert notes["sms"]["deliver_at"] == "2026-03-08T07:00:00.000000Z"


def test_a_recipient_gone_by_the_due_time_is_skipped_and_counted(stack: Stack) -> None:
    seed_subscribers(stack, "charts.gone", ["stay", "gone"], "email")
    spec = EVENT_TYPES[TYPE]
    event = Event(
        event_id=str(uuid.uuid4()),
        type=TYPE,
        category=spec.category,
        priority=spec.priority,
        topic="charts.gone",
        data=TREND,
        created_at=iso(utcnow()),
        send_at_local="09:00",
    )
    record_event(ledger_of(stack), event)
    assert publish_events(stack.clients.sns, stack.clients.topic_arn, [event]) == {}
    assert route_all(stack, router(stack, utcnow()))
    found = ledger_of(stack).event_reads.get(event.event_id)
    assert found is not None and found[0].status is EventStatus.SCHEDULED
    user_store(stack).delete("gone")

    deferral = build_deferral(stack.settings, stack.clients)
    tally = ledger_of(stack).tally.tally_of(event.event_id)
    shards = {k: int(tally.get(k, 1)) for k in ("record_shards", "tally_shards")}
    for note in found[1]:  # as their due items would, when due
        deferral.release(DueWork("notification", note["notification_id"], utcnow(), "", shards))
    record, notes = ledger_of(stack).event_reads.get(event.event_id) or (None, [])
    assert record is not None
    by_user = {n["recipient_id"]: n for n in notes}
    assert by_user["gone"]["status"] == "SKIPPED"
    assert by_user["stay"]["status"] == "QUEUED"
    assert record.status is EventStatus.PROCESSING
    assert record.counts.skipped == 1 and record.counts.total == 2
    assert [m["notification_id"] for m in drain(stack, "email-normal")] == [
        f"{event.event_id}:email:stay"
    ]


def test_a_critical_event_goes_through_quiet_hours_at_once(stack: Stack) -> None:
    add_user(
        stack,
        "u-crit",
        {
            "categories": {"security": ["sms"]},
            "quiet_hours": quiet_now(utcnow(), timedelta(minutes=5)),
        },
        phone="+14155550177",
    )
    event = post_event(stack, "security.login_alert", LOGIN, user_id="u-crit")
    assert route_all(stack, router(stack, utcnow()), ROUTER_CRITICAL)
    _, notes = stored(stack, event.event_id)
    assert notes["sms"]["status"] == "QUEUED"
    assert len(drain(stack, "sms-critical")) == 1
