"""Publishing events to the SNS topic, ten to a PublishBatch call.

Used by the API (through its async micro-batcher) and by the reconciler.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.models import Event

SNS_BATCH_MAX = 10  # PublishBatch accepts at most ten entries.


def sns_entry(event: Event) -> dict[str, Any]:
    return {
        "Message": event.model_dump_json(),
        "MessageAttributes": {
            "priority": {"DataType": "String", "StringValue": event.priority.value},
            "type": {"DataType": "String", "StringValue": event.type},
            "category": {"DataType": "String", "StringValue": event.category.value},
        },
    }


def publish_events(sns: Any, topic_arn: str, events: Sequence[Event]) -> dict[str, str]:
    """Publish in batches of ten; returns {event_id: error} for the entries that failed.

    An exception from the call itself (endpoint down, topic missing) propagates: the caller
    decides whether that fails a request or waits for the reconciler.
    """
    failures: dict[str, str] = {}
    for start in range(0, len(events), SNS_BATCH_MAX):
        chunk = events[start : start + SNS_BATCH_MAX]
        # Entry ids only need to be unique within the call; client event ids may not fit
        # the entry-id alphabet, so the position is the id.
        entries = [{"Id": str(i), **sns_entry(e)} for i, e in enumerate(chunk)]
        resp = sns.publish_batch(TopicArn=topic_arn, PublishBatchRequestEntries=entries)
        for failed in resp.get("Failed", []):
            event = chunk[int(failed["Id"])]
            failures[event.event_id] = f"{failed.get('Code')}: {failed.get('Message')}"
    return failures
