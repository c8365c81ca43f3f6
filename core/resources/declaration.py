"""Herald's AWS resources as data: what provisioning creates and the CDK stacks declare.

Nothing here calls AWS or imports CDK. Names come from `core.aws.names`, keys and indexes
from the packages that own them (`core.aws.dynamo`, `core.ledger.event_index`,
`core.directory.listing`), queue timings from the settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from core.aws import dynamo
from core.aws.names import ResourceNames
from core.catalogue.event_types import CHANNELS, LANES, Lane
from core.directory import listing as directory
from core.ledger import event_index
from core.platform.settings import Settings

ProjectionType = Literal["ALL", "KEYS_ONLY", "INCLUDE"]
QueueRole = Literal["router", "channel", "rules", "dead-letter"]

#: SQS's default retention, stated: a work queue keeps a message four days.
WORK_RETENTION_SECONDS = 4 * 24 * 3600
#: The SQS maximum, longer than any source queue's: time to inspect and replay.
DLQ_RETENTION_SECONDS = 14 * 24 * 3600

#: Which events each router queue's subscription lets through.
FILTER_POLICIES: dict[Lane, dict[str, Any]] = {
    "critical": {"priority": ["critical"]},
    "normal": {"priority": [{"anything-but": "critical"}]},
}


@dataclass(frozen=True)
class Index:
    name: str
    partition_key: str
    sort_key: str
    projection: ProjectionType = "ALL"
    non_key_attributes: tuple[str, ...] = ()

    def api_spec(self) -> dict[str, Any]:
        """The index as DynamoDB's CreateTable / UpdateTable take it."""
        projection: dict[str, Any] = {"ProjectionType": self.projection}
        if self.projection == "INCLUDE":
            projection["NonKeyAttributes"] = list(self.non_key_attributes)
        return {
            "IndexName": self.name,
            "KeySchema": [
                {"AttributeName": self.partition_key, "KeyType": "HASH"},
                {"AttributeName": self.sort_key, "KeyType": "RANGE"},
            ],
            "Projection": projection,
        }


@dataclass(frozen=True)
class Table:
    name: str
    partition_key: str
    sort_key: str
    indexes: tuple[Index, ...]
    ttl_attribute: str
    billing_mode: str = "PAY_PER_REQUEST"
    point_in_time_recovery: bool = True
    deletion_protection: bool = True

    def key_attributes(self) -> list[str]:
        """Every attribute a key of the table or of an index names (all strings), sorted."""
        names = {self.partition_key, self.sort_key}
        for index in self.indexes:
            names |= {index.partition_key, index.sort_key}
        return sorted(names)

    def index(self, name: str) -> Index:
        return next(i for i in self.indexes if i.name == name)


@dataclass(frozen=True)
class Queue:
    name: str
    role: QueueRole
    retention_seconds: int
    visibility_timeout_seconds: int | None = None
    """None: SQS's default (a dead-letter queue is only peeked and replayed)."""
    dead_letter_queue: str | None = None
    max_receive_count: int | None = None
    lane: Lane | None = None
    channel: str | None = None


@dataclass(frozen=True)
class Subscription:
    queue: str
    filter_policy: dict[str, Any]
    raw_message_delivery: bool = True


@dataclass(frozen=True)
class Topic:
    name: str
    subscriptions: tuple[Subscription, ...] = ()


@dataclass(frozen=True)
class Resources:
    prefix: str
    table: Table
    events_topic: Topic
    alarm_topic: Topic
    queues: tuple[Queue, ...]
    names: ResourceNames = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", ResourceNames(self.prefix))

    def queue(self, name: str) -> Queue:
        return next(q for q in self.queues if q.name == name)

    @property
    def work_queues(self) -> tuple[Queue, ...]:
        return tuple(q for q in self.queues if q.role != "dead-letter")

    @property
    def dead_letter_queues(self) -> tuple[Queue, ...]:
        return tuple(q for q in self.queues if q.role == "dead-letter")

    def channel_queues(self, channel: str) -> tuple[Queue, ...]:
        return tuple(q for q in self.work_queues if q.channel == channel)

    def role_queues(self, role: QueueRole) -> tuple[Queue, ...]:
        return tuple(q for q in self.queues if q.role == role)


def table_indexes() -> tuple[Index, ...]:
    """Every global secondary index of the table, in the order they were added."""
    indexes = [Index(name, attr, dynamo.GSI_SORT) for name, attr in dynamo.GSI_PARTITIONS.items()]
    indexes.append(Index(dynamo.GSI_BY_SUBSCRIBER, "subscriber_id", dynamo.PK))
    for name, (attr, projected) in event_index.INDEXES.items():
        indexes.append(
            Index(
                name,
                attr,
                event_index.EVENT_SORT,
                "INCLUDE" if projected else "KEYS_ONLY",
                tuple(projected),
            )
        )
    indexes.append(Index(directory.GSI_BY_DIRECTORY, directory.PARTITION, directory.SORT))
    return tuple(indexes)


def table(prefix: str) -> Table:
    """The one table; it does not depend on any setting but the prefix."""
    return Table(
        name=ResourceNames(prefix).table,
        partition_key=dynamo.PK,
        sort_key=dynamo.SK,
        indexes=table_indexes(),
        ttl_attribute=dynamo.TTL_ATTRIBUTE,
    )


def _work_queue(
    name: str,
    role: QueueRole,
    lane: Lane,
    visibility_timeout_seconds: int,
    max_receives: int,
    channel: str | None = None,
) -> tuple[Queue, Queue]:
    dlq = Queue(
        ResourceNames.dlq_of(name),
        "dead-letter",
        DLQ_RETENTION_SECONDS,
        lane=lane,
        channel=channel,
    )
    work = Queue(
        name,
        role,
        WORK_RETENTION_SECONDS,
        visibility_timeout_seconds,
        dead_letter_queue=dlq.name,
        max_receive_count=max_receives,
        lane=lane,
        channel=channel,
    )
    return dlq, work


def declare(prefix: str, visibility_timeout_seconds: int, max_receives: int) -> Resources:
    """Herald's resources under `prefix`; a queue's visibility timeout and redrive count are
    the settings `HERALD_VISIBILITY_TIMEOUT_SECONDS` and `HERALD_MAX_RECEIVES`."""
    names = ResourceNames(prefix)
    queues: list[Queue] = []

    def add(name: str, role: QueueRole, lane: Lane, channel: str | None = None) -> None:
        queues.extend(
            _work_queue(name, role, lane, visibility_timeout_seconds, max_receives, channel)
        )

    for lane in LANES:
        add(names.router_queue(lane), "router", lane)
    for channel in CHANNELS:
        for lane in LANES:
            add(names.channel_queue(channel, lane), "channel", lane, channel)
    for lane in LANES:
        add(names.rules_queue(lane), "rules", lane)
    events = Topic(
        names.topic,
        tuple(Subscription(names.router_queue(lane), FILTER_POLICIES[lane]) for lane in LANES),
    )
    return Resources(
        prefix=prefix,
        table=table(prefix),
        events_topic=events,
        alarm_topic=Topic(f"{prefix}-alarms"),
        queues=tuple(queues),
    )


def from_settings(settings: Settings) -> Resources:
    return declare(
        settings.resource_prefix, settings.visibility_timeout_seconds, settings.max_receives
    )
