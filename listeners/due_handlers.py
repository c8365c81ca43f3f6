"""The handlers of due work, by kind: the one place they are built (the due sender takes
the dict). Each must be idempotent: a lapsed lease hands an item out twice.

    notification  a deferred notification is due: render and release it (listeners/deferral.py)
    event         a delayed event is due: publish it (listeners/delayed_events.py)
    cancel        a cancelled event's SCHEDULED notifications: cancel them
    digest        a digest's window ends: close it and send its event (listeners/digest_closing.py)
"""

from __future__ import annotations

from collections.abc import Callable

from core.aws.clients import AwsClients
from core.catalogue.templates import TemplateRenderer
from core.directory.users import UserStore
from core.ledger.wiring import Ledger, build_ledger
from core.platform.settings import Settings
from core.timing.due_work import DueStore, DueWork
from core.timing.waiting_events import WaitingEvents
from listeners.channel_queues import ChannelQueues
from listeners.deferral import CANCEL, NOTIFICATION, Deferral, Releaser
from listeners.delayed_events import EVENT, DelayedEvents
from listeners.digest_closing import DIGEST_KIND, build_digest_closer

Handler = Callable[[DueWork], None]


def build_deferral(
    settings: Settings,
    clients: AwsClients,
    due: DueStore | None = None,
    *,
    ledger: Ledger | None = None,
    renderer: TemplateRenderer | None = None,
) -> Deferral:
    """The deferral of one process (the router's hooks and the due sender's release)."""
    table = clients.names.table
    due = due or DueStore(clients.dynamodb, table, settings.due_shards)
    ledger = ledger or build_ledger(clients.dynamodb, table, settings.event_retention_days)
    return Deferral(
        ledger,
        due,
        WaitingEvents(clients.dynamodb, table, settings.event_retention_days),
        UserStore(clients.dynamodb, table),
        renderer or TemplateRenderer(),
        ChannelQueues(clients.sqs, clients.queue_url, clients.names),
        clients.dynamodb,
        table,
    )


def build_due_handlers(
    settings: Settings, clients: AwsClients, due: DueStore
) -> dict[str, Handler]:
    deferral = build_deferral(settings, clients, due)
    delayed = DelayedEvents(deferral.waiting, clients.sns, clients.topic_arn)
    return {
        NOTIFICATION: Releaser(deferral),
        EVENT: delayed.publish,
        CANCEL: deferral.cancel_records,
        DIGEST_KIND: build_digest_closer(settings, clients),
    }
