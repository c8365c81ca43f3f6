"""Due work lands where the due sender still looks, against the emulator: a put that
returns after its minute ended (slow, retried, its answer lost) is put again in an open
minute, so a sender that closed the old minute meanwhile still hands it out."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from core.aws import dynamo
from core.catalogue.models import utcnow
from core.timing.due_claims import DueClaims
from core.timing.due_work import CURSOR_KEY, DueStore, DueWork, bucket_of, work_pk
from listeners.due_sender import DueSender
from tests.conftest import Stack


class Clock:
    """A clock the test sets; every call reads the current setting."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


class PutsWithHook:
    """The emulator's client, with `before_put` run as each PutItem of due work is on its
    way: what happens meanwhile happens before the put lands (a slow put, seen from
    outside)."""

    def __init__(self, dynamodb: Any, before_put: Callable[[], None]) -> None:
        self._db = dynamodb
        self._before_put = before_put

    def put_item(self, **kwargs: Any) -> Any:
        if str(kwargs["Item"][dynamo.SK]["S"]).startswith("W#"):
            self._before_put()
        return self._db.put_item(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def stored_work(stack: Stack, at: datetime) -> list[dict[str, Any]]:
    resp = stack.clients.dynamodb.query(
        TableName=stack.clients.names.table,
        KeyConditionExpression="PK = :pk AND begins_with(SK, :w)",
        ExpressionAttributeValues={":pk": {"S": work_pk(bucket_of(at), 0)}, ":w": {"S": "W#"}},
        ConsistentRead=True,
    )
    return [dynamo.from_item(i) for i in resp.get("Items", [])]


def one_shard_sender(
    stack: Stack, clock: Clock, handled: list[str], owner: str = "sender"
) -> DueSender:
    single = stack.settings.model_copy(update={"due_shards": 1})
    return DueSender(
        single, stack.clients, {"probe": lambda w: handled.append(w.ref)}, owner=owner, clock=clock
    )


def minute_start() -> datetime:
    return utcnow().replace(second=0, microsecond=0)


def test_a_put_that_lands_after_its_minute_closed_is_put_again_and_handed_out(
    stack: Stack,
) -> None:
    minute = minute_start()
    clock = Clock(minute + timedelta(seconds=59, milliseconds=500))
    handled: list[str] = []
    sender = one_shard_sender(stack, clock, handled)
    table = stack.clients.names.table
    DueStore(stack.clients.dynamodb, table, 1, clock=Clock(minute)).ensure_cursor()

    def meanwhile() -> None:
        """While the first put is on its way, the minute ends and its grace passes: the
        sender finds the minute empty and closes it (its cursor moves past)."""
        if stored_work(stack, minute) or clock.at > minute + timedelta(minutes=1, seconds=6):
            return
        clock.at = minute + timedelta(minutes=1, seconds=6)
        assert sender.run_pass().handed == 0
        assert DueClaims(stack.clients.dynamodb, table, "reader").cursor() == bucket_of(
            minute + timedelta(minutes=1)
        )

    slow = DueStore(PutsWithHook(stack.clients.dynamodb, meanwhile), table, 1, clock=clock)
    work = DueWork(kind="probe", ref="p-1", due_at=minute + timedelta(seconds=30), tenant="")
    slow.schedule(work)

    # The first put landed in the closed minute; the one made again after it returned is
    # in the open one, and the next pass hands the work out.
    assert [w["ref"] for w in stored_work(stack, minute)] == ["p-1"]
    assert [w["ref"] for w in stored_work(stack, minute + timedelta(minutes=1))] == ["p-1"]
    assert sender.run_pass().handed == 1
    assert handled == ["p-1"]


def test_a_put_that_returns_in_its_minute_is_put_once(stack: Stack) -> None:
    minute = minute_start()
    clock = Clock(minute + timedelta(seconds=10))
    puts: list[None] = []
    table = stack.clients.names.table
    due = DueStore(
        PutsWithHook(stack.clients.dynamodb, lambda: puts.append(None)), table, 1, clock=clock
    )
    due.schedule(DueWork(kind="probe", ref="p-2", due_at=minute, tenant=""))
    assert len(puts) == 1
    assert [w["ref"] for w in stored_work(stack, minute)] == ["p-2"]


def test_work_recorded_in_a_callers_own_write_is_put_again_when_that_write_was_late(
    stack: Stack,
) -> None:
    """A delayed event's due item goes in the event's own transaction; `landed` after it
    puts the work again when the transaction returned after the item's minute ended."""
    minute = minute_start()
    clock = Clock(minute + timedelta(seconds=50))
    due = DueStore(stack.clients.dynamodb, stack.clients.names.table, 1, clock=clock)
    work = DueWork(kind="probe", ref="p-3", due_at=minute + timedelta(seconds=55), tenant="")
    item = due.item_of(work)
    stack.clients.dynamodb.put_item(TableName=stack.clients.names.table, Item=item)

    due.landed(work, item)  # returned in its minute: nothing more
    assert stored_work(stack, minute + timedelta(minutes=1)) == []

    clock.at = minute + timedelta(minutes=1, seconds=1)
    due.landed(work, item)
    assert [w["ref"] for w in stored_work(stack, minute + timedelta(minutes=1))] == ["p-3"]


def test_a_failed_item_moves_to_an_open_minute_before_it_is_deleted(stack: Stack) -> None:
    """A handler that raised: the item is moved to its retry time with the error and the
    count of tries, and handed out again then."""
    minute = minute_start()
    clock = Clock(minute + timedelta(seconds=20))
    table = stack.clients.names.table
    DueStore(stack.clients.dynamodb, table, 1, clock=clock).schedule(
        DueWork(kind="probe", ref="p-4", due_at=minute + timedelta(seconds=10), tenant="")
    )
    attempts: list[str] = []

    def failing(work: DueWork) -> None:
        attempts.append(work.ref)
        raise RuntimeError("provider down")

    single = stack.settings.model_copy(update={"due_shards": 1, "due_retry_seconds": 1})
    sender = DueSender(single, stack.clients, {"probe": failing}, clock=clock)
    assert sender.run_pass().failed == 1
    moved = stored_work(stack, minute)
    assert [(w["ref"], int(w["attempts"])) for w in moved] == [("p-4", 1)]
    assert "provider down" in moved[0]["last_error"]

    clock.at = minute + timedelta(seconds=25)
    assert sender.run_pass().failed == 1
    assert attempts == ["p-4", "p-4"]
    assert [int(w["attempts"]) for w in stored_work(stack, minute)] == [2]


def test_a_cursor_gone_under_a_running_scheduler_is_made_again_within_a_minute(
    stack: Stack,
) -> None:
    """A scheduler checks the cursor again at most a minute after it last saw it: work put
    after the cursor went away (the table emptied under running processes) is seen."""
    minute = minute_start()
    clock = Clock(minute + timedelta(seconds=5))
    table = stack.clients.names.table
    due = DueStore(stack.clients.dynamodb, table, 1, clock=clock)
    reader = DueClaims(stack.clients.dynamodb, table, "reader")
    due.schedule(DueWork(kind="probe", ref="p-5", due_at=clock.at, tenant=""))
    assert reader.cursor() == bucket_of(minute)
    stack.clients.dynamodb.delete_item(TableName=table, Key=CURSOR_KEY)

    clock.at = minute + timedelta(seconds=30)  # trusted for a minute: not checked yet
    due.schedule(DueWork(kind="probe", ref="p-6", due_at=clock.at, tenant=""))
    assert reader.cursor() is None

    clock.at = minute + timedelta(seconds=70)
    later = DueWork(kind="probe", ref="p-7", due_at=clock.at, tenant="")
    due.schedule(later)
    assert reader.cursor() == bucket_of(clock.at)
    handled: list[str] = []
    assert one_shard_sender(stack, clock, handled).run_pass().handed == 1
    assert handled == ["p-7"]
