"""Deferred notifications: scheduled by the router, released by the due sender.

The router plans a notification SCHEDULED with its `deliver_at` (quiet hours in mode
`defer`, or `send_at_local`) and creates its record; `Deferral.scheduled` then puts one due
item per such record (`core.timing`), after the records exist, so an item never comes due
for a record not yet written; a router that dies in between schedules again on the
redelivery (existing SCHEDULED records are scheduled again: the same key). At the end of
the fan-out `park` moves an event whose every pending record is SCHEDULED to SCHEDULED, out
of the reconciler's way and cancellable.

When an item comes due, `release` renders the notification as things are then (the
profile's addresses and opt-outs, the template) and, in one transaction, moves its record
SCHEDULED → QUEUED and its event to PROCESSING with the `released` mark
(`core.timing.waiting_events`), then enqueues it for the channel's workers. A cancel that
came first refuses the transaction and the record ends CANCELLED instead; one that comes
after is refused itself. A record found QUEUED (a hand-out that died before enqueueing) is
enqueued again: the worker's claim keeps a duplicate from sending twice. A recipient gone,
opted out or without an address now ends SKIPPED; a template that fails, FAILED; both
counted and settled like the router's.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from core.aws import dynamo
from core.aws import errors as aws_errors
from core.aws.dynamo import TRANSACT_ROUNDS
from core.catalogue.event_types import Priority
from core.catalogue.models import (
    Event,
    NotificationMessage,
    NotificationStatus,
    iso,
    parse_notification_id,
    utcnow,
)
from core.catalogue.templates import TemplateError, TemplateRenderer
from core.directory.keys import user_key
from core.directory.preferences import addresses_for
from core.directory.profiles import UserProfile
from core.directory.users import UserStore, item_to_profile
from core.ledger.event_items import record_from_values
from core.ledger.event_tally import SCHEDULED_COUNT, tally_shard
from core.ledger.notification_records import NewNotification, record_key
from core.ledger.record_creation import CountedCreation, RecordCreation
from core.ledger.wiring import Ledger
from core.timing.due_work import DueStore, DueWork
from core.timing.waiting_events import RELEASED, WaitingEvents
from core.timing.waiting_records import cancel_scheduled
from listeners.channel_queues import ChannelQueues

log = logging.getLogger("herald.deferral")

NOTIFICATION = "notification"
CANCEL = "cancel"
SCHEDULED = NotificationStatus.SCHEDULED.value
MEMO_MAX = 10_000  # events whose plan this router saw, until their fan-out completes


class Deferral:
    """The router's two hooks and the due sender's `release` and `cancel_records`."""

    def __init__(
        self,
        ledger: Ledger,
        due: DueStore,
        waiting: WaitingEvents,
        users: UserStore,
        renderer: TemplateRenderer,
        queues: ChannelQueues,
        dynamodb: Any,
        table: str,
    ) -> None:
        self.ledger = ledger
        self.due = due
        self.waiting = waiting
        self.users = users
        self.renderer = renderer
        self.queues = queues
        self._db = dynamodb
        self._table = table
        # event id -> (records waiting, records moving) of the plans this process routed
        self._memo: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    # --- the router's side ----------------------------------------------------------------

    def scheduled(
        self, planned: Sequence[NewNotification], existing: Mapping[str, str] | None = None
    ) -> None:
        """Put the due items of the SCHEDULED records just created (or found SCHEDULED),
        and remember what the plan holds for `park`."""
        existing = existing or {}
        waits: dict[str, int] = {}
        moves: dict[str, int] = {}
        works: list[DueWork] = []
        for note in planned:
            m = note.message
            status = existing.get(m.notification_id, note.status.value)
            if status == SCHEDULED:
                # A record an earlier routing made SCHEDULED that the plan of now would
                # send at once: that routing may have died before its due item; due now.
                waits[m.event_id] = waits.get(m.event_id, 0) + 1
                works.append(self._work(m, note.deliver_at or iso(utcnow())))
            elif status in ("QUEUED", "SENDING", "RETRYING"):
                moves[m.event_id] = moves.get(m.event_id, 0) + 1
        self.due.schedule_many(works)
        with self._lock:
            if len(self._memo) > MEMO_MAX:
                self._memo.clear()  # only a hint: park reads the tally without it
            for event_id in set(waits) | set(moves):
                old = self._memo.get(event_id, (0, 0))
                self._memo[event_id] = (
                    old[0] + waits.get(event_id, 0),
                    old[1] + moves.get(event_id, 0),
                )

    def park(self, event: Event) -> None:
        """At the end of a fan-out that did not settle the event: when every pending
        record is SCHEDULED, the event waits (SCHEDULED) instead of looking in progress."""
        with self._lock:
            waits, moves = self._memo.pop(event.event_id, (0, 0))
        if event.topic is None:
            if waits and not moves and self.waiting.park(event.event_id):
                log.info("every notification waits: SCHEDULED", extra={"event_id": event.event_id})
            return
        if not waits and not event.send_at_local:
            return
        tally = self.ledger.tally.tally_of(event.event_id)
        done = sum(int(tally.get(k, 0)) for k in ("sent", "failed", "skipped"))
        pending = int(tally.get("total", 0)) - done
        waiting = pending and pending == int(tally.get(SCHEDULED_COUNT, 0))
        if waiting and self.waiting.park(event.event_id):
            log.info("every notification waits: SCHEDULED", extra={"event_id": event.event_id})

    @staticmethod
    def _work(message: NotificationMessage, deliver_at: str) -> DueWork:
        return DueWork(
            kind=NOTIFICATION,
            ref=message.notification_id,
            due_at=datetime.fromisoformat(deliver_at.replace("Z", "+00:00")),
            tenant="",
            data={"record_shards": message.record_shards, "tally_shards": message.tally_shards},
        )

    def creating(self) -> RecordCreation:
        """The ledger's record creation, scheduling the SCHEDULED records it creates."""
        return ScheduledCreation(self.ledger.creation, self)

    # --- the due sender's side ------------------------------------------------------------

    def release(self, work: DueWork) -> None:
        """The due item of one notification (idempotent: see the module docstring)."""
        error = self.release_many([work])[0]
        if error is not None:
            raise RuntimeError(error)

    def release_many(self, works: Sequence[DueWork]) -> list[str | None]:
        """`release` for a chunk of due items at once: their records, events and profiles
        in consistent BatchGetItems, each record's transition on its own (each races its
        own cancel), the released messages sent together. Per item None, or why it must be
        tried again."""
        parsed = [parse_notification_id(w.ref) for w in works]
        keys: list[dict[str, Any]] = []
        for work, ids in zip(works, parsed, strict=True):
            if ids is not None:
                shards = int(work.data.get("record_shards", 1))
                keys += [record_key(*ids, shards), dynamo.event_key(ids[0]), user_key(ids[2])]
        unique = {(k[dynamo.PK]["S"], k[dynamo.SK]["S"]): k for k in keys}
        found = {
            (i[dynamo.PK]["S"], i[dynamo.SK]["S"]): i
            for i in dynamo.batch_get(self._db, self._table, list(unique.values()), consistent=True)
        }
        events: dict[str, dict[str, Any]] = {}  # plain, so a release's mark carries over
        to_send: list[NotificationMessage] = []
        errors: list[str | None] = []
        for work, ids in zip(works, parsed, strict=True):
            if ids is None:
                log.warning("due notification with a malformed id %r dropped", work.ref)
                errors.append(None)
                continue
            try:
                self._release_one(work, ids, found, events, to_send)
                errors.append(None)
            except Exception as exc:  # this one is tried again later; the rest go on
                errors.append(f"{type(exc).__name__}: {exc}")
        try:
            self.queues.enqueue(to_send)
        except Exception as exc:  # released but maybe not sent: all handed out again
            sent = {m.notification_id for m in to_send}
            again = f"enqueue: {exc}"
            return [again if w.ref in sent else e for w, e in zip(works, errors, strict=True)]
        return errors

    def _release_one(
        self,
        work: DueWork,
        ids: tuple[str, str, str],
        found: Mapping[tuple[str, str], dict[str, Any]],
        events: dict[str, dict[str, Any]],
        to_send: list[NotificationMessage],
    ) -> None:
        event_id, channel, recipient = ids
        shards = int(work.data.get("record_shards", 1))

        def typed(key: dict[str, Any]) -> dict[str, Any] | None:
            return found.get((key[dynamo.PK]["S"], key[dynamo.SK]["S"]))

        record_item = typed(record_key(event_id, channel, recipient, shards))
        event_item = typed(dynamo.event_key(event_id))
        if record_item is None or event_item is None:
            return  # expired or never written: nothing to send
        status = str(dynamo.from_item(record_item).get("status"))
        if status not in (SCHEDULED, NotificationStatus.QUEUED.value):
            return  # released and sent, cancelled or settled by an earlier hand-out
        stored = events.setdefault(event_id, dynamo.from_item(event_item))
        user_item = typed(user_key(recipient))
        profile = item_to_profile(user_item) if user_item else None
        event = record_from_values(dict(stored))
        base = self._message(event, stored, channel, recipient, work.data)
        outcome, reason, message = self._render(event, base, profile)
        if status == NotificationStatus.QUEUED.value:
            # Released by a hand-out that may have died before sending it: again (a
            # duplicate message is harmless, the worker's claim lets one through).
            if outcome is NotificationStatus.QUEUED:
                to_send.append(message)
            return
        if not self._transition(event.event_id, stored, message, outcome, reason):
            return
        stored[RELEASED] = True  # the chunk's next items of this event need not release it
        stored["status"] = "PROCESSING"
        if outcome is NotificationStatus.QUEUED:
            to_send.append(message)
        else:
            self.ledger.settlement.settle(self.ledger.tally.tally_of(event.event_id))

    def _message(
        self,
        event: Event,
        stored: Mapping[str, Any],
        channel: str,
        recipient: str,
        data: Mapping[str, Any],
    ) -> NotificationMessage:
        """The notification as the router would have queued it, content not rendered."""
        return NotificationMessage.model_construct(
            notification_id=f"{event.event_id}:{channel}:{recipient}",
            event_id=event.event_id,
            event_type=event.type,
            category=event.category,
            priority=Priority(event.priority),
            channel=channel,
            recipient_id=recipient,
            addresses=[],
            content={},
            created_at=iso(utcnow()),
            tally_shards=int(data.get("tally_shards", 1)),
            record_shards=int(data.get("record_shards", 1)),
            counted_records=sorted(stored.get("counted_records") or []),
        )

    def _render(
        self, event: Event, base: NotificationMessage, profile: UserProfile | None
    ) -> tuple[NotificationStatus, str | None, NotificationMessage]:
        """QUEUED with the content and addresses of now, or why it cannot be sent."""
        if profile is None:
            return NotificationStatus.SKIPPED, "the user no longer exists", base
        if base.channel in profile.preferences.opt_out:
            return NotificationStatus.SKIPPED, f"opted out of {base.channel}", base
        addresses, missing = addresses_for(base.channel, profile)
        if missing:
            return NotificationStatus.SKIPPED, missing, base
        chat_format = profile.chat.format if base.channel == "chat" and profile.chat else None
        try:
            content = self.renderer.render(
                event,
                base.channel,
                recipient={
                    "user_id": profile.user_id,
                    "locale": profile.locale,
                    "timezone": profile.timezone,
                },
                chat_format=chat_format,
            )
        except TemplateError as exc:
            return NotificationStatus.FAILED, exc.reason, base
        values = base.model_dump()
        values.update(addresses=list(addresses), content=content)
        return NotificationStatus.QUEUED, None, NotificationMessage.model_validate(values)

    def _transition(
        self,
        event_id: str,
        stored: Mapping[str, Any],
        message: NotificationMessage,
        outcome: NotificationStatus,
        reason: str | None,
    ) -> bool:
        """The record SCHEDULED → `outcome` with the event's release (and the count of an
        outcome the tally keeps), in one transaction; False when refused: the event was
        cancelled (the record is then CANCELLED) or the record moved on meanwhile."""
        records = self.ledger.records
        detail = reason or "due: released"
        update = records.transition(
            message,
            sets={"status": outcome.value, "last_error": reason},
            allowed=[SCHEDULED],
            history=(outcome.value, detail),
        )
        update["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        items: list[dict[str, Any]] = [{"Update": update}]
        if not stored.get(RELEASED) or stored.get("status") != "PROCESSING":
            items.append({"Update": self.waiting.release_update(event_id)})
        if outcome is not NotificationStatus.QUEUED and not message.counted_records:
            count = {"skipped" if outcome is NotificationStatus.SKIPPED else "failed": 1}
            items.append(
                {"Update": self.ledger.tally.update(event_id, count, shard=tally_shard(message))}
            )
        for rounds in range(1, TRANSACT_ROUNDS + 1):
            try:
                records.write(items)
                return True
            except ClientError as exc:
                refused = aws_errors.refused_items(exc)
                event_refused = 1 in refused and items[1]["Update"]["Key"] == (
                    dynamo.event_key(event_id)
                )
                if event_refused:
                    self._cancel_one(message, "its event was cancelled")
                    return False
                if refused:
                    return False
                aws_errors.back_off_or_raise(exc, rounds, TRANSACT_ROUNDS)
        return False  # pragma: no cover - back_off_or_raise raises on the last round

    def _cancel_one(self, message: NotificationMessage, detail: str) -> bool:
        return (
            self.ledger.records.update(
                message,
                sets={"status": NotificationStatus.CANCELLED.value},
                allowed=[SCHEDULED],
                history=(NotificationStatus.CANCELLED.value, detail),
            )
            is not None
        )

    def cancel_records(self, work: DueWork) -> None:
        """A cancelled event's SCHEDULED records → CANCELLED, their due items deleted
        (`core.timing.waiting_records`)."""
        cancel_scheduled(self._db, self._table, self.due, work.ref)


class ScheduledCreation(RecordCreation):
    """The ledger's `RecordCreation` (wrapped, so a caller's own is kept), putting the due
    items of the SCHEDULED records once they exist: the router's one hook, for every path
    it creates records by."""

    def __init__(self, inner: RecordCreation, deferral: Deferral) -> None:
        self._inner = inner
        self._deferral = deferral

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)  # anything else is the wrapped creation's

    def create_counted(
        self, notifications: Sequence[NewNotification], *, redelivered: bool = False
    ) -> CountedCreation:
        outcome = self._inner.create_counted(notifications, redelivered=redelivered)
        self._deferral.scheduled(notifications, outcome.existing)
        return outcome

    def create_routed(self, events: Sequence[Sequence[NewNotification]]) -> set[int]:
        refused = self._inner.create_routed(events)
        self._deferral.scheduled(
            [n for i, notes in enumerate(events) if i not in refused for n in notes]
        )
        return refused


class Releaser:
    """The `notification` due handler: one item (`handler(work)`, the due sender's
    contract) or a chunk at once (`handler.many(works)`, which the due sender prefers when
    a handler has it: batched reads and sends)."""

    def __init__(self, deferral: Deferral) -> None:
        self._deferral = deferral

    def __call__(self, work: DueWork) -> None:
        self._deferral.release(work)

    def many(self, works: Sequence[DueWork]) -> list[str | None]:
        return self._deferral.release_many(works)
