"""A send in flight keeps its message invisible; once done, the message's own timeout rules."""

from __future__ import annotations

import time

from listeners.heartbeat import Heartbeat
from listeners.messages import QueueMessage
from tests.conftest import Stack
from tests.support import wait_until

QUEUE = "herald-test-email-normal"


def test_heartbeat_extends_visibility_while_tracked(stack: Stack) -> None:
    url = stack.clients.queue_url(QUEUE)
    stack.clients.sqs.send_message(QueueUrl=url, MessageBody="slow send")
    raw = stack.clients.sqs.receive_message(QueueUrl=url, VisibilityTimeout=2)["Messages"][0]
    message = QueueMessage.from_sqs(QUEUE, raw)

    heartbeat = Heartbeat(stack.clients.sqs, stack.clients.queue_url, visibility_seconds=2).start()
    try:
        heartbeat.track_many([message])
        time.sleep(3.5)  # past the original 2 s visibility: only the heartbeat hides it
        assert stack.receive_all(QUEUE) == []
        heartbeat.done(message)
    finally:
        heartbeat.stop()
    assert wait_until(lambda: bool(stack.receive_all(QUEUE, attempts=1)), timeout=6, interval=0.5)
