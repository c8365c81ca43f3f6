"""A cancelled event's waiting notifications: each SCHEDULED record → CANCELLED (one
conditional update: a record a release took first stays as it is) and its due item
deleted, best effort (a due item left behind finds its record CANCELLED and does nothing).

Used by the due sender's `cancel` handler for any event, and by the API at once for a
user's event (its few records on one partition): the API's read stays bounded.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from core.aws import dynamo
from core.aws import errors as aws_errors
from core.catalogue.models import NotificationStatus, iso, utcnow
from core.ledger.event_reads import all_records, tally_layout
from core.ledger.notification_records import history_entry
from core.timing.due_work import DueStore, DueWork

NOTIFICATION = "notification"  # the due item kind of a deferred notification
SCHEDULED = NotificationStatus.SCHEDULED.value
CANCELLED = NotificationStatus.CANCELLED.value


def cancel_record(db: Any, table: str, key: dict[str, Any], detail: str) -> bool:
    """SCHEDULED → CANCELLED on the record at `key` (typed); False when it was not
    SCHEDULED (released, or cancelled already)."""
    try:
        aws_errors.retry(
            lambda: db.update_item(
                TableName=table,
                Key=key,
                UpdateExpression="SET #s = :cancelled, updated_at = :now, "
                "history = list_append(history, :h)",
                ConditionExpression="#s = :scheduled",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":cancelled": {"S": CANCELLED},
                    ":scheduled": {"S": SCHEDULED},
                    ":now": {"S": iso(utcnow())},
                    ":h": {"L": [history_entry(CANCELLED, detail)]},
                },
            )
        )
    except ClientError as exc:
        if aws_errors.is_refusal(exc):
            return False
        raise
    return True


def cancel_scheduled(db: Any, table: str, due: DueStore, event_id: str) -> int:
    """Cancel every SCHEDULED record of the event (all its partitions, read consistently)
    and unschedule their due items; returns how many this call cancelled."""
    layout = tally_layout(db, table, event_id, consistent=True)
    cancelled = 0
    for partition in dynamo.record_partitions(event_id, int(layout.get("record_shards", 1))):
        projection = "PK, SK, #s, deliver_at, notification_id"
        for item in all_records(db, table, partition, projection, consistent=True):
            plain = dynamo.from_item(item)
            if plain.get("status") != SCHEDULED:
                continue
            key = {dynamo.PK: item[dynamo.PK], dynamo.SK: item[dynamo.SK]}
            cancelled += cancel_record(db, table, key, "the event was cancelled")
            if plain.get("deliver_at") and plain.get("notification_id"):
                at = datetime.fromisoformat(str(plain["deliver_at"]).replace("Z", "+00:00"))
                work = DueWork(NOTIFICATION, str(plain["notification_id"]), at, "")
                due.unschedule(work)
    return cancelled
