"""Create every AWS resource Herald needs; idempotent, and the same against moto,
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

from core.aws import dynamo
from core.aws.clients import AwsClients
from core.catalogue.event_types import LANES
from core.directory import listing as directory
from core.directory.devices import ensure_platform_applications
from core.ledger import event_index
from core.platform.settings import Settings
from core.security.api_keys import SCOPES, ApiKeyStore

log = logging.getLogger("herald.provision")

DLQ_RETENTION_SECONDS = 14 * 24 * 3600  # the SQS maximum: time to inspect and replay


def _listing_gsi(index: str, attr: str) -> dict[str, Any]:
    return {
        "IndexName": index,
        "KeySchema": [
            {"AttributeName": attr, "KeyType": "HASH"},
            {"AttributeName": dynamo.GSI_SORT, "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "ALL"},
    }


def _listing_specs() -> list[dict[str, Any]]:
    """Every index but `by_subscriber`, which the table was always made with."""
    specs = [_listing_gsi(index, attr) for index, attr in dynamo.GSI_PARTITIONS.items()]
    return [*specs, *event_index.index_specs(), directory.index_spec()]


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
    specs = _listing_specs()
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


def ensure_table(clients: AwsClients) -> None:
    db = clients.dynamodb
    name = clients.names.table
    try:
        add_missing_listing_gsis(db, name, db.describe_table(TableName=name)["Table"])
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        attributes = {dynamo.PK, dynamo.SK, dynamo.GSI_SORT, "subscriber_id"}
        attributes |= set(dynamo.GSI_PARTITIONS.values()) | {directory.PARTITION, directory.SORT}
        attributes |= event_index.key_attributes()
        gsis = _listing_specs()
        gsis.append(
            {
                "IndexName": dynamo.GSI_BY_SUBSCRIBER,
                "KeySchema": [
                    {"AttributeName": "subscriber_id", "KeyType": "HASH"},
                    {"AttributeName": dynamo.PK, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        )
        db.create_table(
            TableName=name,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": a, "AttributeType": "S"} for a in sorted(attributes)
            ],
            KeySchema=[
                {"AttributeName": dynamo.PK, "KeyType": "HASH"},
                {"AttributeName": dynamo.SK, "KeyType": "RANGE"},
            ],
            GlobalSecondaryIndexes=gsis,
        )
        db.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1})
        log.info("created table %s", name)
    ttl = db.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        db.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": dynamo.TTL_ATTRIBUTE},
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


def ensure_queues(clients: AwsClients, settings: Settings) -> dict[str, str]:
    """Every work queue with its DLQ; returns {queue name: ARN}."""
    arns: dict[str, str] = {}
    for name in clients.names.work_queues():
        dlq_url = ensure_queue(
            clients,
            clients.names.dlq_of(name),
            {"MessageRetentionPeriod": str(DLQ_RETENTION_SECONDS)},
        )
        redrive = {
            "deadLetterTargetArn": _queue_arn(clients, dlq_url),
            "maxReceiveCount": str(settings.max_receives),
        }
        url = ensure_queue(
            clients,
            name,
            {
                "VisibilityTimeout": str(settings.visibility_timeout_seconds),
                "RedrivePolicy": json.dumps(redrive),
            },
        )
        arns[name] = _queue_arn(clients, url)
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


FILTER_POLICIES: dict[str, dict[str, Any]] = {
    "critical": {"priority": ["critical"]},
    "normal": {"priority": [{"anything-but": "critical"}]},
}


def ensure_topic(clients: AwsClients, queue_arns: dict[str, str]) -> str:
    sns = clients.sns
    topic_arn = str(sns.create_topic(Name=clients.names.topic)["TopicArn"])
    existing: dict[str, str] = {}
    paginator = sns.get_paginator("list_subscriptions_by_topic")
    for page in paginator.paginate(TopicArn=topic_arn):
        for sub in page["Subscriptions"]:
            if sub["SubscriptionArn"].startswith("arn:"):
                existing[sub["Endpoint"]] = sub["SubscriptionArn"]
    for lane in LANES:
        name = clients.names.router_queue(lane)
        queue_arn = queue_arns[name]
        clients.sqs.set_queue_attributes(
            QueueUrl=clients.queue_url(name),
            Attributes={"Policy": _allow_topic_policy(queue_arn, topic_arn)},
        )
        attributes = {
            "RawMessageDelivery": "true",
            "FilterPolicy": json.dumps(FILTER_POLICIES[lane]),
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
    ensure_table(clients)
    arns = ensure_queues(clients, settings)
    ensure_topic(clients, arns)
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
