"""Dead-lettering splits its SendMessageBatch calls by size: ten messages near the size limit
do not fit one call, and a refused copy would leave its message on the queue."""

from __future__ import annotations

from typing import Any

from listeners.batch import SQS_BATCH_MAX_BYTES, BatchSettler, entry_bytes
from listeners.messages import Ack, DeadLetter, QueueMessage


class RecordingSqs:
    """Takes every entry; remembers what was sent and what was deleted."""

    def __init__(self) -> None:
        self.sent: list[list[dict[str, Any]]] = []
        self.deleted: list[str] = []

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.sent.append(Entries)
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}

    def delete_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.deleted += [e["ReceiptHandle"] for e in Entries]
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}


def message(index: int, body_bytes: int) -> QueueMessage:
    return QueueMessage(
        queue="herald-test-email-normal",
        message_id=f"m-{index}",
        receipt_handle=f"r-{index}",
        body="x" * body_bytes,
        receive_count=3,
        attributes={"priority": "normal"},
    )


def test_large_dead_letters_are_copied_in_calls_under_the_size_limit() -> None:
    sqs = RecordingSqs()
    messages = [message(i, 100 * 1024) for i in range(10)]
    settler = BatchSettler(sqs, lambda name: f"http://sqs/{name}")
    settler.settle(messages, [DeadLetter("gave up after 5 attempts")] * len(messages))
    assert len(sqs.sent) > 1
    assert all(sum(entry_bytes(e) for e in call) <= SQS_BATCH_MAX_BYTES for call in sqs.sent)
    copies = [e for call in sqs.sent for e in call]
    assert [len(e["MessageBody"]) for e in copies] == [100 * 1024] * 10
    assert {e["MessageAttributes"]["error"]["StringValue"] for e in copies} == {
        "gave up after 5 attempts"
    }
    assert sorted(sqs.deleted) == sorted(m.receipt_handle for m in messages)


def test_small_dead_letters_still_go_ten_to_a_call_and_acks_are_deleted() -> None:
    sqs = RecordingSqs()
    messages = [message(i, 10) for i in range(12)]
    results = [DeadLetter("poison")] * 11 + [Ack()]
    BatchSettler(sqs, lambda name: f"http://sqs/{name}").settle(messages, results)
    assert [len(call) for call in sqs.sent] == [10, 1]
    assert len(sqs.deleted) == 12
