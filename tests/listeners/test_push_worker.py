"""A push endpoint SNS reports disabled is disabled on the user, so it is not tried again."""

from __future__ import annotations

import uuid

from core.directory.profiles import ProfileFields
from core.directory.users import UserStore
from listeners.delivery import DeliveryHandler, RetryPolicy
from listeners.messages import Ack, DeadLetter, QueueMessage
from listeners.worker import disable_push_endpoints
from notifiers.push import PushNotifier
from tests.conftest import Stack
from tests.factories import ledger_of, notification, recorded_event, routed


def endpoint(stack: Stack) -> str:
    sns = stack.clients.sns
    app = sns.create_platform_application(
        Name="herald-fcm", Platform="GCM", Attributes={"PlatformCredential": "key"}
    )
    return str(
        sns.create_platform_endpoint(
            PlatformApplicationArn=app["PlatformApplicationArn"], Token=f"t-{uuid.uuid4()}"
        )["EndpointArn"]
    )


def push_message(stack: Stack, user_id: str, arns: list[str]) -> QueueMessage:
    ledger = ledger_of(stack)
    planned = notification(
        recorded_event(ledger, user_id=user_id),
        user_id,
        "push",
        addresses=arns,
        content={"title": "New follower", "body": "A followed you"},
    )
    (message,) = routed(ledger, [planned])
    return QueueMessage(
        queue="herald-test-push-normal",
        message_id=str(uuid.uuid4()),
        receipt_handle="r",
        body=message.model_dump_json(),
    )


def handler(stack: Stack) -> DeliveryHandler:
    return DeliveryHandler(
        notifier=PushNotifier(stack.clients.sns),
        ledger=ledger_of(stack),
        policy=RetryPolicy(base=0.01, cap=0.01, max_attempts=3),
        lease_seconds=30,
        on_dead_addresses=disable_push_endpoints(stack.clients),
    )


def test_disabled_endpoints_are_disabled_on_the_user(stack: Stack) -> None:
    users = UserStore(stack.clients.dynamodb, stack.clients.names.table)
    live, dead = endpoint(stack), endpoint(stack)
    users.put_profile("u-push", ProfileFields(push_endpoints=[live, dead]))
    stack.clients.sns.set_endpoint_attributes(EndpointArn=dead, Attributes={"Enabled": "false"})

    deliver = handler(stack)
    try:
        assert deliver([push_message(stack, "u-push", [live, dead])]) == [Ack()]
        profile = users.get("u-push")
        assert profile is not None and profile.active_push_endpoints() == [live]

        stack.clients.sns.set_endpoint_attributes(EndpointArn=live, Attributes={"Enabled": "false"})
        result = deliver([push_message(stack, "u-push", [live])])
        assert isinstance(result[0], DeadLetter)
        profile = users.get("u-push")
        assert profile is not None and profile.active_push_endpoints() == []
    finally:
        deliver.close()
