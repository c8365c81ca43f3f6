"""From an event and its recipients to the notifications to record. No I/O.

One notification per (recipient, channel the event asks for): QUEUED with its rendered
content, SKIPPED with the preference that stopped it, FAILED when its template could not
render, or SCHEDULED with when it is due (quiet hours deferred it, or `send_at_local`),
rendered then. Skips and failures are recorded, not dropped, so `GET /events/{id}` says why a user
got nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from core.aws.dynamo import notification_sk
from core.catalogue.models import (
    Event,
    NotificationMessage,
    NotificationStatus,
    iso,
    notification_id,
)
from core.catalogue.templates import TemplateError, TemplateRenderer
from core.directory.preferences import decide
from core.directory.profiles import UserProfile
from core.ledger.notification_records import NewNotification
from core.ledger.record_counts import SELF_COUNTED_MAX
from core.ledger.shard_layout import DEFAULT_LAYOUT, ShardLayout


@dataclass(frozen=True)
class Recipient:
    """A user to notify; `channels` are a topic subscription's own channels, if it has any."""

    profile: UserProfile
    channels: Sequence[str] | None = None


def plan(
    event: Event,
    recipients: Sequence[Recipient],
    renderer: TemplateRenderer,
    now: datetime,
    layout: ShardLayout = DEFAULT_LAYOUT,
) -> list[NewNotification]:
    """The notifications of `event` to `recipients`; a topic's records and counts spread
    over `layout`'s shards (each event keeps the counts it was planned with: they ride on
    its messages and its tally)."""
    planned: list[NewNotification] = []
    for recipient in recipients:
        profile = recipient.profile
        decisions = decide(
            category=event.category,
            priority=event.priority,
            profile=profile,
            now=now,
            subscription_channels=recipient.channels,
            send_at_local=event.send_at_local,
        )
        for decision in decisions:
            fields: dict[str, Any] = {
                "notification_id": notification_id(
                    event.event_id, decision.channel, profile.user_id
                ),
                "event_id": event.event_id,
                "event_type": event.type,
                "category": event.category,
                "priority": event.priority,
                "channel": decision.channel,
                "recipient_id": profile.user_id,
                "addresses": list(decision.addresses),
                "content": {},
                "created_at": iso(now),
                "tally_shards": layout.tally if event.topic else 1,
                "record_shards": layout.records if event.topic else 1,
            }
            if not decision.send:
                planned.append(
                    NewNotification(
                        _record_only(fields), NotificationStatus.SKIPPED, decision.skip_reason
                    )
                )
                continue
            if decision.deliver_at is not None:  # rendered when due (listeners/deferral.py)
                planned.append(
                    NewNotification(
                        NotificationMessage(**fields),
                        NotificationStatus.SCHEDULED,
                        decision.wait_reason,
                        deliver_at=iso(decision.deliver_at),
                    )
                )
                continue
            try:
                fields["content"] = renderer.render(
                    event,
                    decision.channel,
                    recipient={
                        "user_id": profile.user_id,
                        "locale": profile.locale,
                        "timezone": profile.timezone,
                    },
                    chat_format=decision.chat_format,
                )
            except TemplateError as exc:
                planned.append(
                    NewNotification(
                        NotificationMessage(**fields), NotificationStatus.FAILED, exc.reason
                    )
                )
                continue
            planned.append(NewNotification(NotificationMessage(**fields)))
    if event.topic or len(planned) > SELF_COUNTED_MAX:
        return planned
    # Few records on the event's own partition: they are their own tally.
    listed = [notification_sk(n.message.channel, n.message.recipient_id) for n in planned]
    return [
        replace(n, message=n.message.model_copy(update={"counted_records": listed}))
        for n in planned
    ]


def _record_only(fields: dict[str, Any]) -> NotificationMessage:
    """A skipped notification is recorded, never queued, and often has no address (that is
    why it was skipped): it skips the validation that guards queued messages."""
    if fields["addresses"]:
        return NotificationMessage(**fields)
    return NotificationMessage.model_construct(**fields)
