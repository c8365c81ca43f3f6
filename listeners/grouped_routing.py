"""A receive's first-time single-user events, routed together: one consistent read of
their users, one transaction for their records, lists and status (`create_routed`), one
send per channel queue. Events the shared transaction refuses (something of theirs exists
already), alerts, topics and redeliveries take the router's one-event path instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from core.aws import dynamo
from core.aws.clients import AwsClients
from core.aws.dynamo import TRANSACT_MAX
from core.catalogue.models import Event, NotificationStatus
from core.catalogue.templates import TemplateRenderer
from core.directory.profiles import UserProfile
from core.directory.users import BATCH_GET_MAX, PROFILE_SK, StoreBusy, item_to_profile
from core.ledger.notification_store import NewNotification, NotificationStore
from core.ledger.record_creation import routed_items
from core.platform import metrics
from listeners.channel_queues import ChannelQueues
from listeners.fanout import RouterWork
from listeners.messages import Ack, QueueMessage, Result
from listeners.planner import Recipient, plan

log = logging.getLogger("herald.router")

UNPROCESSED_ROUNDS = 5  # BatchGetItem rounds for keys DynamoDB hands back (throttling)


class GroupRouting:
    def __init__(
        self,
        clients: AwsClients,
        notifications: NotificationStore,
        queues: ChannelQueues,
        renderer: TemplateRenderer,
        clock: Callable[[], datetime],
        complete: Callable[[Event], None],
    ) -> None:
        self.clients = clients
        self.notifications = notifications
        self.queues = queues
        self.renderer = renderer
        self.clock = clock
        self._complete = complete

    def route(
        self,
        entries: list[tuple[int, QueueMessage, RouterWork]],
        results: list[Result | None],
        read_first: set[int],
    ) -> list[tuple[int, QueueMessage, RouterWork]]:
        """Route first-time single-user events of one receive with as few calls as possible;
        sets their results and returns the entries left for the one-event path (adding to
        `read_first` those whose records may exist already)."""
        profiles = self._profiles(
            {work.event.user_id for _, _, work in entries if work.event.user_id}
        )
        now = self.clock()
        alone: list[tuple[int, QueueMessage, RouterWork]] = []
        planned: list[tuple[int, RouterWork, list[NewNotification]]] = []
        for index, message, work in entries:
            profile = profiles.get(str(work.event.user_id))
            notes = plan(work.event, [Recipient(profile)], self.renderer, now) if profile else []
            if not notes or routed_items(notes) > TRANSACT_MAX:  # unknown user, nothing to send
                alone.append((index, message, work))
            else:
                planned.append((index, work, notes))
        routed: list[tuple[int, RouterWork, list[NewNotification]]] = []
        for group in _transactions(planned):
            refused = self.notifications.create_routed([notes for _, _, notes in group])
            routed += [entry for k, entry in enumerate(group) if k not in refused]
            # Something of these exists already: each on its own, reading first.
            indexes = {group[k][0] for k in refused}
            alone += [(i, m, w) for i, m, w in entries if i in indexes]
            read_first.update(indexes)
        queued = NotificationStatus.QUEUED
        self.queues.enqueue(
            [n.message for _, _, notes in routed for n in notes if n.status is queued]
        )
        for index, work, notes in routed:
            if not any(n.status is queued for n in notes):  # no worker will settle it
                self._complete(work.event)
            results[index] = Ack()
            metrics.event_routed(work.event, notes)
            log.info(
                "%d notification(s) created (%d queued, %d skipped, %d failed) and enqueued",
                len(notes),
                sum(n.status is queued for n in notes),
                sum(n.status is NotificationStatus.SKIPPED for n in notes),
                sum(n.status is NotificationStatus.FAILED for n in notes),
                extra={"event_id": work.event.event_id},
            )
        return alone

    def _profiles(self, user_ids: set[str]) -> dict[str, UserProfile]:
        """Profiles by id with one consistent BatchGetItem per 100 (a user created just
        before their event must be found)."""
        table = self.clients.names.table
        ids = sorted(user_ids)
        found: dict[str, UserProfile] = {}
        for start in range(0, len(ids), BATCH_GET_MAX):
            keys = [
                {dynamo.PK: {"S": dynamo.user_pk(u)}, dynamo.SK: {"S": PROFILE_SK}}
                for u in ids[start : start + BATCH_GET_MAX]
            ]
            request: dict[str, Any] = {table: {"Keys": keys, "ConsistentRead": True}}
            for round_ in range(UNPROCESSED_ROUNDS):
                if round_:
                    time.sleep(min(0.05 * 2**round_, 1.0))
                resp = self.clients.dynamodb.batch_get_item(RequestItems=request)
                for item in resp.get("Responses", {}).get(table, []):
                    profile = item_to_profile(item)
                    found[profile.user_id] = profile
                request = resp.get("UnprocessedKeys") or {}
                if not request:
                    break
            if request:
                raise StoreBusy("DynamoDB left profile reads unprocessed; try again later")
        return found


def _transactions(
    planned: list[tuple[int, RouterWork, list[NewNotification]]],
) -> list[list[tuple[int, RouterWork, list[NewNotification]]]]:
    """Events packed in order into groups whose records plus tallies fit one transaction."""
    groups: list[list[tuple[int, RouterWork, list[NewNotification]]]] = []
    size = TRANSACT_MAX
    for entry in planned:
        items = routed_items(entry[2])
        if size + items > TRANSACT_MAX:
            groups.append([])
            size = 0
        groups[-1].append(entry)
        size += items
    return groups
