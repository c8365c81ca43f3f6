"""The batch core as an AWS Lambda SQS handler (ReportBatchItemFailures).

Lambda receives and deletes for us; we only say which records failed. Retry and DeadLetter
results both become `batchItemFailures`: Lambda makes them visible again after the
visibility timeout and the queue's RedrivePolicy moves a message that keeps failing to
its DLQ.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from listeners.batch import Handler, run_handler
from listeners.messages import Ack, QueueMessage

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, list[dict[str, str]]]]


def sqs_lambda_handler(
    handler: Handler, retry_base: float = 2.0, retry_cap: float = 300.0
) -> LambdaHandler:
    def handle(event: dict[str, Any], context: Any = None) -> dict[str, list[dict[str, str]]]:
        messages = [QueueMessage.from_lambda_record(r) for r in event.get("Records", [])]
        results = run_handler(handler, messages, retry_base, retry_cap)
        return {
            "batchItemFailures": [
                {"itemIdentifier": m.message_id}
                for m, r in zip(messages, results, strict=True)
                if not isinstance(r, Ack)
            ]
        }

    return handle
