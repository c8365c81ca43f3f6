"""The synthesized data and messaging templates declare what provisioning creates on the
emulator: table keys, indexes and projections, TTL, billing; queue names, visibility,
retention and redrive; topics, subscriptions and their filter policies. Both read
core/resources/declaration.py; this checks that neither strays from it."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import Stack
from tests.deploy.conftest import PREFIX, Synthesized

DEFAULT_VISIBILITY = 30  # SQS's, for a queue that sets none


def _gsi(index: dict[str, Any]) -> tuple[Any, ...]:
    projection = index["Projection"]
    return (
        tuple((k["AttributeName"], k["KeyType"]) for k in index["KeySchema"]),
        projection["ProjectionType"],
        tuple(sorted(projection.get("NonKeyAttributes", []))),
    )


def emulator_table(stack: Stack) -> dict[str, Any]:
    db = stack.clients.dynamodb
    name = stack.clients.names.table
    table = db.describe_table(TableName=name)["Table"]
    ttl = db.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    return {
        "name": table["TableName"],
        "keys": tuple((k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]),
        "attributes": {
            (a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]
        },
        "indexes": {g["IndexName"]: _gsi(g) for g in table["GlobalSecondaryIndexes"]},
        "ttl": ttl["AttributeName"],
        "billing": table["BillingModeSummary"]["BillingMode"],
    }


def template_table(synth: Synthesized) -> dict[str, Any]:
    (table,) = synth.resources("data", "AWS::DynamoDB::Table").values()
    props = table["Properties"]
    return {
        "name": props["TableName"],
        "keys": tuple((k["AttributeName"], k["KeyType"]) for k in props["KeySchema"]),
        "attributes": {
            (a["AttributeName"], a["AttributeType"]) for a in props["AttributeDefinitions"]
        },
        "indexes": {g["IndexName"]: _gsi(g) for g in props["GlobalSecondaryIndexes"]},
        "ttl": props["TimeToLiveSpecification"]["AttributeName"],
        "billing": props["BillingMode"],
    }


def emulator_queues(stack: Stack) -> dict[str, dict[str, Any]]:
    sqs = stack.clients.sqs
    found = {}
    for url in sqs.list_queues(QueueNamePrefix=f"{PREFIX}-").get("QueueUrls", []):
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        redrive = json.loads(attrs["RedrivePolicy"]) if "RedrivePolicy" in attrs else None
        found[attrs["QueueArn"].rsplit(":", 1)[1]] = {
            "visibility": int(attrs["VisibilityTimeout"]),
            "retention": int(attrs["MessageRetentionPeriod"]),
            "redrive": (
                (redrive["deadLetterTargetArn"].rsplit(":", 1)[1], int(redrive["maxReceiveCount"]))
                if redrive
                else None
            ),
        }
    return found


def template_queues(synth: Synthesized) -> dict[str, dict[str, Any]]:
    queues = synth.resources("messaging", "AWS::SQS::Queue")
    names = {logical: q["Properties"]["QueueName"] for logical, q in queues.items()}
    found = {}
    for queue in queues.values():
        props = queue["Properties"]
        redrive = props.get("RedrivePolicy")
        found[props["QueueName"]] = {
            "visibility": props.get("VisibilityTimeout", DEFAULT_VISIBILITY),
            "retention": props["MessageRetentionPeriod"],
            "redrive": (
                (names[redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]], redrive["maxReceiveCount"])
                if redrive
                else None
            ),
        }
    return found


def emulator_topics(stack: Stack) -> tuple[set[str], dict[str, tuple[Any, bool]]]:
    sns = stack.clients.sns
    topics = {t["TopicArn"].rsplit(":", 1)[1] for t in sns.list_topics()["Topics"]}
    subscriptions = {}
    events = next(
        t["TopicArn"]
        for t in sns.list_topics()["Topics"]
        if t["TopicArn"].endswith(f":{PREFIX}-events")
    )
    for sub in sns.list_subscriptions_by_topic(TopicArn=events)["Subscriptions"]:
        attrs = sns.get_subscription_attributes(SubscriptionArn=sub["SubscriptionArn"])[
            "Attributes"
        ]
        subscriptions[sub["Endpoint"].rsplit(":", 1)[1]] = (
            json.loads(attrs["FilterPolicy"]),
            attrs["RawMessageDelivery"] == "true",
        )
    return {
        t for t in topics if t.startswith(f"{PREFIX}-") and not t.endswith(("-fcm", "-apns"))
    }, subscriptions


def template_topics(synth: Synthesized) -> tuple[set[str], dict[str, tuple[Any, bool]]]:
    topics = {
        t["Properties"]["TopicName"]
        for t in synth.resources("messaging", "AWS::SNS::Topic").values()
    }
    queues = synth.resources("messaging", "AWS::SQS::Queue")
    subscriptions = {}
    for sub in synth.resources("messaging", "AWS::SNS::Subscription").values():
        props = sub["Properties"]
        queue = queues[props["Endpoint"]["Fn::GetAtt"][0]]["Properties"]["QueueName"]
        subscriptions[queue] = (props["FilterPolicy"], props["RawMessageDelivery"])
    return topics, subscriptions


def test_the_table_is_the_same(stack: Stack, fargate: Synthesized) -> None:
    assert template_table(fargate) == emulator_table(stack)


def test_the_queues_are_the_same(stack: Stack, fargate: Synthesized) -> None:
    assert (
        fargate.herald.config.visibility_timeout_seconds
        == stack.settings.visibility_timeout_seconds
    )
    assert fargate.herald.config.max_receives == stack.settings.max_receives
    emulator = emulator_queues(stack)
    assert len(emulator) == 28
    assert template_queues(fargate) == emulator


def test_the_topics_and_subscriptions_are_the_same(stack: Stack, fargate: Synthesized) -> None:
    assert template_topics(fargate) == emulator_topics(stack)
