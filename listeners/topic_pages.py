"""One page of a topic's fan-out: the next subscribers, their notifications, and the
message that continues with the page after, paced by the lane's backlog.

The router hands a topic event's pages here; a page is idempotent like the rest of routing
(a continuation already sent is not sent again unless a repair asks), so a redelivered page
creates and sends nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from core.aws.clients import AwsClients
from core.catalogue.models import Event, EventStatus
from core.directory.users import UserStore
from core.ledger.wiring import Ledger
from core.platform.settings import Settings
from listeners.fanout import RouterWork, continuation, unreached_reason
from listeners.fanout_pacing import FanoutPacer
from listeners.planner import Recipient

log = logging.getLogger("herald.router")

#: The router's fan-out of one page: (event, recipients, page, redelivered, repair) ->
#: the channels it queued.
FanOut = Callable[[Event, Sequence[Recipient], int, bool, bool], set[str]]


class TopicPages:
    def __init__(
        self,
        settings: Settings,
        clients: AwsClients,
        users: UserStore,
        ledger: Ledger,
        pacer: FanoutPacer,
        fan_out: FanOut,
        complete: Callable[[Event], None],
    ) -> None:
        self.settings = settings
        self.clients = clients
        self.users = users
        self.events = ledger.event_status
        self.tally = ledger.tally
        self.pacer = pacer
        self.fan_out = fan_out
        self.complete = complete

    def route(self, work: RouterWork, queue: str, redelivered: bool) -> None:
        event = work.event
        assert event.topic is not None
        if self.pacer.waits(work, queue):
            return
        page = self.users.subscribers(event.topic, self.settings.fanout_page_size, work.cursor)
        profiles = self.users.get_many(s.user_id for s in page.items)
        recipients = [
            Recipient(profiles[s.user_id], s.channels) for s in page.items if s.user_id in profiles
        ]
        if work.page == 0 and not recipients and not page.next_cursor:
            self._settle_unreached(event, len(page.items))
            return
        if len(recipients) < len(page.items):
            log.info(
                "page %d: %d subscriber(s) without a profile left out",
                work.page,
                len(page.items) - len(recipients),
                extra={"event_id": event.event_id},
            )
        used = self.fan_out(event, recipients, work.page, redelivered, work.repair)
        if page.next_cursor:
            self._continue(work, page.next_cursor, queue, used)
        else:
            self.complete(event)

    def _settle_unreached(self, event: Event, subscribers: int) -> None:
        """A topic nobody (with a profile) subscribes to: SUCCESS, but saying so, so that a
        misspelt topic shows on the event instead of passing as delivered."""
        reason = unreached_reason(event.topic or "", subscribers)
        if self.events.transition(
            event.event_id,
            EventStatus.PROCESSING,
            EventStatus.SUCCESS,
            reason=reason,
            fanout_complete=True,
        ):
            log.info("event settled: %s", reason, extra={"event_id": event.event_id})

    def _continue(self, work: RouterWork, cursor: str, queue: str, used: set[str]) -> None:
        """A repair sends the next page again even if it was sent once: that message may
        be the one that was lost."""
        event, page = work.event, work.page + 1
        if not work.repair and self.tally.continuation_sent(event.event_id, page):
            return
        body = continuation(event, cursor, page, work.repair, work.channels_after(used))
        self.clients.sqs.send_message(QueueUrl=self.clients.queue_url(queue), **body)
        self.tally.mark_continuation_sent(event.event_id, page)
