"""A topic's fan-out goes out at the pace its workers take it.

A 100,000-subscriber event routed as fast as the router reads pages would put 100,000
messages in its lane's channel queues within minutes, and every other event of the lane
(the normal lane is most of them) would wait behind all of it. So a continuation page looks
at its lane first: while the lane's channel queues hold `fanout_max_waiting` messages
waiting, the page is sent again with a delay (`fanout_pace_seconds`) instead of adding a
thousand more. A fresh message, not a retry of this one: waiting spends none of the
message's receive budget, however long the workers take.
"""

from __future__ import annotations

import logging

from core.aws.clients import AwsClients
from core.catalogue.event_types import CHANNELS
from core.platform.settings import Settings
from listeners.backlog import Backlog
from listeners.fanout import RouterWork, continuation

log = logging.getLogger("herald.router")


class FanoutPacer:
    def __init__(self, settings: Settings, clients: AwsClients) -> None:
        self.settings = settings
        self.clients = clients
        self.backlog = Backlog(clients.sqs, clients.queue_url)

    def waits(self, work: RouterWork, queue: str) -> bool:
        """Whether continuation page `work` waits (it was sent again, delayed, to `queue`);
        False when it goes now. A depth that cannot be read does not hold a fan-out up."""
        limit = self.settings.fanout_max_waiting
        if not limit or not work.page or work.cursor is None:
            return False
        self.backlog.forget()
        lane = work.event.priority.lane
        names = self.clients.names
        waiting = sum(max(self.backlog.waiting(names.channel_queue(c, lane)), 0) for c in CHANNELS)
        if waiting < limit:
            return False
        self.clients.sqs.send_message(
            QueueUrl=self.clients.queue_url(queue),
            DelaySeconds=self.settings.fanout_pace_seconds,
            **continuation(work.event, work.cursor, work.page, work.repair),
        )
        log.info(
            "page %d waits %ds: %d messages ahead of it in the %s lane",
            work.page,
            self.settings.fanout_pace_seconds,
            waiting,
            lane,
            extra={"event_id": work.event.event_id},
        )
        return True
