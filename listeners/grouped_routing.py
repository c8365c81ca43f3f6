"""A receive's first-time single-user events, routed together: one consistent read of
their users, one transaction for their records, lists and status (`create_routed`), one
send per channel queue. Events the shared transaction refuses (something of theirs exists
already), alerts, topics and redeliveries take the router's one-event path instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from core.aws.clients import AwsClients
from core.aws.dynamo import TRANSACT_MAX
from core.catalogue.models import Event, NotificationStatus
from core.catalogue.templates import TemplateRenderer
from core.directory.profiles import UserProfile
from core.directory.users import UserStore
from core.ledger.notification_records import NewNotification
from core.ledger.record_creation import RecordCreation, routed_items
from core.platform import metrics
from listeners.channel_queues import ChannelQueues
from listeners.fanout import RouterWork
from listeners.messages import Ack, QueueMessage, Result
from listeners.planner import Recipient, plan

log = logging.getLogger("herald.router")


class GroupRouting:
    def __init__(
        self,
        clients: AwsClients,
        creation: RecordCreation,
        queues: ChannelQueues,
        renderer: TemplateRenderer,
        clock: Callable[[], datetime],
        complete: Callable[[Event], None],
    ) -> None:
        self.clients = clients
        self.users = UserStore(clients.dynamodb, clients.names.table)
        self.creation = creation
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
            refused = self.creation.create_routed([notes for _, _, notes in group])
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
        """Profiles by id, read consistently (a user created just before their event must
        be found): one BatchGetItem per 100."""
        return self.users.get_many(sorted(user_ids), consistent=True)


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
