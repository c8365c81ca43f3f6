"""A topic's fan-out goes out at the pace its workers take it.

A 100,000-subscriber event routed as fast as the router reads pages would put 100,000
messages in its lane's channel queues within minutes, and every other event of the lane
(the normal lane is most of them) would wait behind all of it. So a continuation page looks
at its lane first: while the queues of the channels the fan-out uses hold
`fanout_max_waiting` messages waiting, the page is sent again with a delay
(`fanout_pace_seconds`) instead of adding a thousand more. A fresh message, not a retry of
this one: waiting spends none of the message's receive budget, however long the workers
take.

Three things keep the pace from stalling a topic:

- Only the fan-out's own channels count: the channels its earlier pages queued, carried on
  the continuation (`RouterWork.channels`). An email backlog does not hold an SMS-only
  topic; a page before this was carried counts every channel of the lane.
- A page waits at most `fanout_max_wait_seconds` in all, from the first time it waited
  (`waiting_since`, carried on the delayed copy); then it goes whatever the depth.
- Each wait touches the event's tally, so the reconciler sees a fan-out that is pacing as
  moving, not as one whose page was lost; and the delayed copies are not backlog: a delayed
  router message is always a page waiting on purpose, so the reconciler's router-queue
  depth (`VisibleBacklog`) counts only messages that are visible.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from botocore.exceptions import BotoCoreError, ClientError

from core.aws.clients import AwsClients
from core.catalogue.event_types import CHANNELS
from core.ledger.event_tally import EventTally
from core.platform.settings import Settings
from listeners.backlog import UNREADABLE, Backlog
from listeners.fanout import RouterWork, continuation

log = logging.getLogger("herald.router")


class FanoutPacer:
    def __init__(
        self, settings: Settings, clients: AwsClients, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.clients = clients
        self.backlog = Backlog(clients.sqs, clients.queue_url)
        self.tally = EventTally(
            clients.dynamodb, clients.names.table, settings.event_retention_days
        )
        self.clock = clock

    def waits(self, work: RouterWork, queue: str) -> bool:
        """Whether continuation page `work` waits (it was sent again, delayed, to `queue`);
        False when it goes now. A depth that cannot be read does not hold a fan-out up."""
        limit = self.settings.fanout_max_waiting
        if not limit or not work.page or work.cursor is None:
            return False
        now = self.clock()
        since = work.waiting_since if work.waiting_since is not None else now
        if now - since >= self.settings.fanout_max_wait_seconds:
            if work.waiting_since is not None:
                log.warning(
                    "page %d goes after waiting %ds for its lane",
                    work.page,
                    now - since,
                    extra={"event_id": work.event.event_id},
                )
            return False
        self.backlog.forget()
        lane = work.event.priority.lane
        names = self.clients.names
        channels = sorted(work.channels) if work.channels is not None else CHANNELS
        waiting = sum(max(self.backlog.waiting(names.channel_queue(c, lane)), 0) for c in channels)
        if waiting < limit:
            return False
        self.clients.sqs.send_message(
            QueueUrl=self.clients.queue_url(queue),
            DelaySeconds=self.settings.fanout_pace_seconds,
            **continuation(work.event, work.cursor, work.page, work.repair, work.channels, since),
        )
        self._touch(work)
        log.info(
            "page %d waits %ds: %d messages ahead of it in the %s lane (%s)",
            work.page,
            self.settings.fanout_pace_seconds,
            waiting,
            lane,
            ", ".join(channels),
            extra={"event_id": work.event.event_id},
        )
        return True

    def _touch(self, work: RouterWork) -> None:
        """The tally's time moves on: the reconciler takes a fan-out whose tally has not
        changed for its stranded period for one that lost a page. Best effort: the delayed
        copy is sent already, and a reconciler that repairs a paced fan-out only sends
        pages whose notifications the claims keep from going twice."""
        try:
            self.tally.add(work.event.event_id)
        except (BotoCoreError, ClientError) as exc:
            log.warning("could not mark a paced fan-out as moving: %s", exc)


class VisibleBacklog(Backlog):
    """A router queue's backlog: visible messages only. Its delayed messages are fan-out
    pages waiting on purpose (above); counting them, the reconciler would defer every
    republish and repair of the lane for as long as a large fan-out paces."""

    def _depth(self, queue: str) -> int:
        try:
            attrs = self._sqs.get_queue_attributes(
                QueueUrl=self._queue_url(queue), AttributeNames=["ApproximateNumberOfMessages"]
            ).get("Attributes", {})
        except (BotoCoreError, ClientError) as exc:
            log.warning("could not read a queue's depth: %s", exc, extra={"queue": queue})
            return UNREADABLE
        return int(attrs.get("ApproximateNumberOfMessages", 0))


__all__ = ["FanoutPacer", "VisibleBacklog"]
