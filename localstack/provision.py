"""Create every AWS resource Herald needs, as `core/resources/declaration.py` declares them
(the CDK app in deploy/ reads the same declaration); idempotent, and the same against moto,
LocalStack or real AWS (only `AWS_ENDPOINT_URL` differs).

    python -m localstack.provision
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from core.aws.clients import AwsClients
from core.directory.devices import ensure_platform_applications
from core.platform.settings import Settings
from core.resources import declaration
from core.resources.declaration import Queue, Resources, Table
from core.security.api_keys import SCOPES, ApiKeyStore

log = logging.getLogger("herald.provision")


def _projection(index: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    projection = index.get("Projection", {})
    return projection.get("ProjectionType", ""), tuple(
        sorted(projection.get("NonKeyAttributes", []))
    )


def add_missing_listing_gsis(db: Any, name: str, table: dict[str, Any]) -> None:
    """A table made by an older Herald lacks newer indexes (the sharded event indexes,
    `by_directory`): add them. DynamoDB builds one new index at a time, so a second missing
    one waits for a re-run."""
    present = {g["IndexName"]: g for g in table.get("GlobalSecondaryIndexes", [])}
    specs = [index.api_spec() for index in declaration.table_indexes()]
    for spec in specs:
        built = present.get(spec["IndexName"])
        if built is not None and _projection(built) != _projection(spec):
            # DynamoDB cannot change an index's projection in place: it has to be deleted
            # and built again, which an operator decides (listings and the reconciler
            # read it meanwhile).
            log.warning(
                "index %s of table %s projects %s, this Herald expects %s: delete it and "
                "provision again to rebuild it",
                spec["IndexName"],
                name,
                _projection(built),
                _projection(spec),
            )
    for spec in specs:
        if spec["IndexName"] in present:
            continue
        db.update_table(
            TableName=name,
            AttributeDefinitions=[
                {"AttributeName": k["AttributeName"], "AttributeType": "S"}
                for k in spec["KeySchema"]
            ],
            GlobalSecondaryIndexUpdates=[{"Create": spec}],
        )
        log.info("adding index %s to table %s", spec["IndexName"], name)
        return


def ensure_table(clients: AwsClients, table: Table | None = None) -> None:
    """The declared table, its indexes and its TTL. Point-in-time recovery and deletion
    protection are the AWS deployment's (deploy/): an emulator has no use for them."""
    table = table or declaration.table(clients.names.prefix)
    db = clients.dynamodb
    name = table.name
    try:
        add_missing_listing_gsis(db, name, db.describe_table(TableName=name)["Table"])
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        db.create_table(
            TableName=name,
            BillingMode=table.billing_mode,
            AttributeDefinitions=[
                {"AttributeName": a, "AttributeType": "S"} for a in table.key_attributes()
            ],
            KeySchema=[
                {"AttributeName": table.partition_key, "KeyType": "HASH"},
                {"AttributeName": table.sort_key, "KeyType": "RANGE"},
            ],
            GlobalSecondaryIndexes=[index.api_spec() for index in table.indexes],
        )
        db.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1})
        log.info("created table %s", name)
    ttl = db.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        db.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute},
        )


def _queue_arn(clients: AwsClients, url: str) -> str:
    attrs = clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return str(attrs["Attributes"]["QueueArn"])


def ensure_queue(clients: AwsClients, name: str, attributes: dict[str, str]) -> str:
    """Create by name only, then set attributes: CreateQueue with attributes that differ
    from an existing queue's fails, and a re-run must converge instead."""
    url = str(clients.sqs.create_queue(QueueName=name)["QueueUrl"])
    clients.sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    return url


def queue_attributes(queue: Queue, dead_letter_arn: str | None) -> dict[str, str]:
    """The SQS attributes of a declared queue (its DLQ's ARN for the redrive)."""
    attributes = {"MessageRetentionPeriod": str(queue.retention_seconds)}
    if queue.visibility_timeout_seconds is not None:
        attributes["VisibilityTimeout"] = str(queue.visibility_timeout_seconds)
    if queue.dead_letter_queue is not None:
        redrive = {
            "deadLetterTargetArn": dead_letter_arn,
            "maxReceiveCount": str(queue.max_receive_count),
        }
        attributes["RedrivePolicy"] = json.dumps(redrive)
    return attributes


def ensure_queues(clients: AwsClients, resources: Resources) -> dict[str, str]:
    """Every declared queue, dead-letter queues first; returns {queue name: ARN}."""
    arns: dict[str, str] = {}
    ordered = [*resources.dead_letter_queues, *resources.work_queues]
    for queue in ordered:
        dlq_arn = arns[queue.dead_letter_queue] if queue.dead_letter_queue else None
        url = ensure_queue(clients, queue.name, queue_attributes(queue, dlq_arn))
        arns[queue.name] = _queue_arn(clients, url)
    return arns


def _allow_topic_policy(queue_arn: str, topic_arn: str) -> str:
    """Real AWS drops SNS deliveries to a queue whose policy does not allow the topic."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AllowHeraldTopic",
                    "Effect": "Allow",
                    "Principal": {"Service": "sns.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
                }
            ],
        }
    )


def ensure_topic(clients: AwsClients, resources: Resources, queue_arns: dict[str, str]) -> str:
    """The events topic and its filtered, raw subscriptions of the router queues."""
    sns = clients.sns
    topic = resources.events_topic
    topic_arn = str(sns.create_topic(Name=topic.name)["TopicArn"])
    existing: dict[str, str] = {}
    paginator = sns.get_paginator("list_subscriptions_by_topic")
    for page in paginator.paginate(TopicArn=topic_arn):
        for sub in page["Subscriptions"]:
            if sub["SubscriptionArn"].startswith("arn:"):
                existing[sub["Endpoint"]] = sub["SubscriptionArn"]
    for subscription in topic.subscriptions:
        queue_arn = queue_arns[subscription.queue]
        clients.sqs.set_queue_attributes(
            QueueUrl=clients.queue_url(subscription.queue),
            Attributes={"Policy": _allow_topic_policy(queue_arn, topic_arn)},
        )
        attributes = {
            "RawMessageDelivery": str(subscription.raw_message_delivery).lower(),
            "FilterPolicy": json.dumps(subscription.filter_policy),
        }
        sub_arn = existing.get(queue_arn)
        if sub_arn is None:
            sns.subscribe(
                TopicArn=topic_arn,
                Protocol="sqs",
                Endpoint=queue_arn,
                Attributes=attributes,
                ReturnSubscriptionArn=True,
            )
        else:
            for key, value in attributes.items():
                sns.set_subscription_attributes(
                    SubscriptionArn=sub_arn, AttributeName=key, AttributeValue=value
                )
    return topic_arn


def provision(settings: Settings, clients: AwsClients | None = None) -> None:
    clients = clients or AwsClients(settings)
    resources = declaration.from_settings(settings)
    ensure_table(clients, resources.table)
    arns = ensure_queues(clients, resources)
    ensure_topic(clients, resources, arns)
    clients.sns.create_topic(Name=resources.alarm_topic.name)
    if settings.aws_endpoint_url:  # an emulator: push platforms with placeholder credentials
        ensure_platform_applications(clients.sns, clients.names.prefix)
    if settings.bootstrap_api_key:
        store = ApiKeyStore(clients.dynamodb, clients.names.table)
        store.ensure(settings.bootstrap_api_key, "bootstrap", SCOPES)


def wait_for_endpoint(clients: AwsClients, timeout: float) -> None:
    """Block until the AWS endpoint answers: under supervisord the emulator starts beside us."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            clients.sqs.list_queues(MaxResults=1)
            return
        except (BotoCoreError, ClientError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Create Herald's AWS resources (idempotent).")
    parser.add_argument("--wait", type=float, default=0, help="seconds to wait for the endpoint")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = Settings()
    clients = AwsClients(settings)
    if args.wait:
        wait_for_endpoint(clients, args.wait)
    provision(settings, clients)
    print(f"provisioned resources with prefix {settings.resource_prefix!r}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
