"""The reconciler's depth check: waiting messages, read once a pass, unknown as behind."""

from __future__ import annotations

from listeners.backlog import UNREADABLE, Backlog
from tests.conftest import Stack

QUEUE = "herald-test-email-normal"


def test_waiting_messages_are_read_once_a_pass(stack: Stack) -> None:
    backlog = Backlog(stack.clients.sqs, stack.clients.queue_url)
    assert backlog.behind([QUEUE]) == []
    stack.clients.sqs.send_message(QueueUrl=stack.clients.queue_url(QUEUE), MessageBody="{}")
    stack.clients.sqs.send_message(
        QueueUrl=stack.clients.queue_url(QUEUE), MessageBody="{}", DelaySeconds=60
    )

    assert backlog.waiting(QUEUE) == 0  # this pass read it already
    backlog.forget()
    assert backlog.waiting(QUEUE) == 2  # one visible, one delayed
    assert backlog.behind([QUEUE]) == [QUEUE]


def test_a_queue_whose_depth_cannot_be_read_counts_as_behind(stack: Stack) -> None:
    backlog = Backlog(stack.clients.sqs, stack.clients.queue_url)
    assert backlog.waiting("herald-test-no-such-queue") == UNREADABLE
    assert backlog.behind(["herald-test-no-such-queue", QUEUE]) == ["herald-test-no-such-queue"]
