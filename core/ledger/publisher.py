"""Publishing events to the SNS topic, ten to a PublishBatch call.

Used by the API (through its async micro-batcher) and by the reconciler.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from core.aws import errors as aws_errors
from core.aws.chunking import sized_chunks
from core.catalogue.models import Event
from core.platform import tracing

SNS_BATCH_MAX = 10  # PublishBatch accepts at most ten entries,
SNS_BATCH_MAX_BYTES = 256 * 1024  # of at most 256 KiB together (messages and attributes).
PUBLISH_ROUNDS = 3  # a partial result's failed entries are tried again this many times in all


def sns_entry(event: Event, extra: dict[str, str] | None = None) -> dict[str, Any]:
    attributes = {
        "priority": event.priority.value,
        "type": event.type,
        "category": event.category.value,
        **(extra or {}),
    }
    return {
        "Message": event.model_dump_json(),
        "MessageAttributes": {
            **{k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
            **tracing.attributes(event.event_id),
        },
    }


def entry_bytes(entry: dict[str, Any]) -> int:
    """What SNS counts of one entry: the message, and each attribute's name, type and value."""
    size = len(entry["Message"].encode())
    for name, value in entry["MessageAttributes"].items():
        size += len(name.encode()) + len(value["DataType"].encode())
        size += len(value["StringValue"].encode())
    return size


def publish_events(
    sns: Any,
    topic_arn: str,
    events: Sequence[Event],
    attributes: dict[str, str] | None = None,
) -> dict[str, str]:
    """Publish in batches of at most ten entries and 256 KiB; returns {event_id: error}
    for the entries that failed (`attributes` go on every message).

    An exception from the call itself (endpoint down, topic missing) propagates: the caller
    decides whether that fails a request or waits for the reconciler.
    """
    failures: dict[str, str] = {}
    entries = [(event, sns_entry(event, attributes)) for event in events]
    size_of = lambda pair: entry_bytes(pair[1])  # noqa: E731
    for chunk in sized_chunks(entries, size_of, SNS_BATCH_MAX, SNS_BATCH_MAX_BYTES):
        pending = list(chunk)
        for round_ in range(PUBLISH_ROUNDS):
            if round_:  # entries SNS could not take this time (throttled, internal error)
                time.sleep(aws_errors.jittered(round_ - 1, 0.05, 0.5))
            # Entry ids only need to be unique within the call; client event ids may not
            # fit the entry-id alphabet, so the position is the id.
            batch = [{"Id": str(i), **entry} for i, (_, entry) in enumerate(pending)]
            resp = sns.publish_batch(TopicArn=topic_arn, PublishBatchRequestEntries=batch)
            retry = []
            for failed in resp.get("Failed", []):
                event, entry = pending[int(failed["Id"])]
                if failed.get("SenderFault") or round_ + 1 == PUBLISH_ROUNDS:
                    failures[event.event_id] = f"{failed.get('Code')}: {failed.get('Message')}"
                else:
                    retry.append((event, entry))
            pending = retry
            if not pending:
                break
    return failures
