"""Smoke test: the synthesized data and messaging templates, deployed into the emulator's
CloudFormation (moto's), create the table, the queues with their redrive policies and the
topics that the templates declare.

The templates are the session's synthesis (`fargate`, prefix `herald-test`), so their
resources are named as provisioning names them. The test therefore keeps a snapshot of the
emulator, empties it, deploys, checks, deletes the stacks and puts the snapshot back: the
provisioned stack other tests restore is left as it was, and no name collides.

Each stack is deployed from a copy; the production templates are not changed. The copy
leaves out:

- CDK's metadata resource (`AWS::CDK::Metadata`) and the bootstrap check (the
  `BootstrapVersion` parameter, an SSM parameter type resolved from the CDK bootstrap
  stack, and the `CheckBootstrapVersion` rule): there is no bootstrap stack in the
  emulator, and moto's CloudFormation does not evaluate rules.
- The resource types moto's CloudFormation does not implement (`UNSUPPORTED`; moto warns
  and skips them; the test checks that it still does, and names them): the secrets
  (`AWS::SecretsManager::Secret`), the queue and topic policies (`AWS::SQS::QueuePolicy`,
  `AWS::SNS::TopicPolicy`: SNS's permission to send, TLS only) and the topic's
  subscriptions (`AWS::SNS::Subscription`). So the filtered subscriptions are not deployed
  here: their filter policies and raw delivery are compared with what provisioning creates
  in test_template_matches_emulator.py; this test checks that each subscription's endpoint
  is a queue the deployed stack created.
- The outputs that name a left-out resource (the data stack exports the secrets to the
  compute stack). Neither of these two stacks imports from the other (no `Fn::ImportValue`);
  the messaging stack's export of the alarm topic is deployed and checked.

There is no KMS key in either template (the queues use SSE-SQS). moto's table ignores
`TimeToLiveSpecification` and `PointInTimeRecoverySpecification` when created by
CloudFormation, so those are not checked here either (the template tests check them).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from core.aws.clients import AwsClients
from core.platform.settings import Settings
from tests.conftest import Stack, reset_emulator
from tests.deploy.conftest import PREFIX, Synthesized
from tests.deploy.test_template_matches_emulator import (
    emulator_queues,
    template_queues,
    template_table,
    template_topics,
)
from tests.support import emulator_snapshot

#: Resource types of the two templates that moto's CloudFormation does not implement.
UNSUPPORTED = {
    "AWS::SecretsManager::Secret",
    "AWS::SNS::Subscription",
    "AWS::SNS::TopicPolicy",
    "AWS::SQS::QueuePolicy",
}
#: CDK's, not AWS resources: never deployed to the emulator.
CDK_ONLY = {"AWS::CDK::Metadata"}
KEPT = "before-cloudformation-smoke"


def _refers_to(value: Any, logical_ids: set[str]) -> bool:
    text = json.dumps(value)
    return any(f'"{logical}"' in text for logical in logical_ids)


def emulator_copy(template: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """The template without what the emulator cannot take (see the module's docstring);
    and the types of the resources it left out."""
    body = copy.deepcopy(template)
    body.get("Parameters", {}).pop("BootstrapVersion", None)
    body.get("Rules", {}).pop("CheckBootstrapVersion", None)
    for section in ("Parameters", "Rules"):
        if not body.get(section):
            body.pop(section, None)
    left_out = {
        logical
        for logical, resource in body["Resources"].items()
        if resource["Type"] in UNSUPPORTED | CDK_ONLY
    }
    stripped = {body["Resources"].pop(logical)["Type"] for logical in left_out}
    outputs = {
        name: output
        for name, output in body.get("Outputs", {}).items()
        if not _refers_to(output["Value"], left_out)
    }
    if outputs:
        body["Outputs"] = outputs
    else:
        body.pop("Outputs", None)
    assert not _refers_to(body["Resources"], left_out), "a kept resource names a left-out one"
    return body, stripped


@pytest.fixture
def empty_emulator(moto_endpoint: str) -> Iterator[str]:
    """The session's emulator, empty for the test and put back as it was after it."""
    emulator_snapshot(moto_endpoint, KEPT, restore=False)
    reset_emulator(moto_endpoint)
    try:
        yield moto_endpoint
    finally:
        emulator_snapshot(moto_endpoint, KEPT, restore=True)


def test_data_and_messaging_stacks_deploy_on_the_emulator(
    empty_emulator: str, settings: Settings, fargate: Synthesized
) -> None:
    cfn = boto3.client("cloudformation", endpoint_url=empty_emulator, region_name="us-east-1")
    deployed = Stack(settings, AwsClients(settings))
    # moto skips a resource type it does not implement, listing a placeholder with no type
    # or id for it: none of UNSUPPORTED is created (when moto implements one, this fails
    # and the copy can keep it).
    probe = {"Resources": {f"Probe{i}": {"Type": t} for i, t in enumerate(sorted(UNSUPPORTED))}}
    cfn.create_stack(StackName=f"{PREFIX}-probe", TemplateBody=json.dumps(probe))
    placeholders = cfn.describe_stack_resources(StackName=f"{PREFIX}-probe")["StackResources"]
    assert [r.get("ResourceType") for r in placeholders] == [None] * len(UNSUPPORTED)
    cfn.delete_stack(StackName=f"{PREFIX}-probe")

    stacks = {
        "data": fargate.herald.data.stack_name,
        "messaging": fargate.herald.messaging.stack_name,
    }
    stripped = {}
    for kind, name in stacks.items():
        body, stripped[kind] = emulator_copy(fargate.json(kind))
        cfn.create_stack(StackName=name, TemplateBody=json.dumps(body))
        (described,) = cfn.describe_stacks(StackName=name)["Stacks"]
        assert described["StackStatus"] == "CREATE_COMPLETE", described
    assert "Fn::ImportValue" not in json.dumps([fargate.json(kind) for kind in stacks])
    assert stripped == {
        "data": {"AWS::SecretsManager::Secret"},
        "messaging": {"AWS::SNS::Subscription", "AWS::SNS::TopicPolicy", "AWS::SQS::QueuePolicy"},
    }
    physical = {
        kind: {
            r["LogicalResourceId"]: r["PhysicalResourceId"]
            for r in cfn.describe_stack_resources(StackName=name)["StackResources"]
        }
        for kind, name in stacks.items()
    }

    # The table: keys, attributes, indexes with their projections, billing.
    expected_table = template_table(fargate)
    table = deployed.clients.dynamodb.describe_table(TableName=expected_table["name"])["Table"]
    assert (
        tuple((k["AttributeName"], k["KeyType"]) for k in table["KeySchema"])
        == expected_table["keys"]
    )
    assert {
        (a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]
    } == expected_table["attributes"]
    assert {
        g["IndexName"]: (
            tuple((k["AttributeName"], k["KeyType"]) for k in g["KeySchema"]),
            g["Projection"]["ProjectionType"],
            tuple(sorted(g["Projection"].get("NonKeyAttributes", []))),
        )
        for g in table["GlobalSecondaryIndexes"]
    } == expected_table["indexes"]
    assert table["BillingModeSummary"]["BillingMode"] == expected_table["billing"]
    assert table["DeletionProtectionEnabled"] is True

    # The queues: names, visibility, retention, redrive to their dead-letter queues.
    queues = emulator_queues(deployed)
    assert len(queues) == 28
    assert queues == template_queues(fargate)

    # The topics, and each subscription's endpoint a queue this stack created.
    topics, subscriptions = template_topics(fargate)
    assert subscriptions
    arns = {t["TopicArn"] for t in deployed.clients.sns.list_topics()["Topics"]}
    assert {arn.rsplit(":", 1)[1] for arn in arns} == topics
    messaging = fargate.json("messaging")["Resources"]
    for logical, resource in messaging.items():
        if resource["Type"] == "AWS::SNS::Subscription":
            queue = resource["Properties"]["Endpoint"]["Fn::GetAtt"][0]
            assert physical["messaging"][queue].endswith(
                messaging[queue]["Properties"]["QueueName"]
            ), logical
    assert set(subscriptions) <= set(queues)
    exports = {e["Name"]: e["Value"] for e in cfn.list_exports()["Exports"]}
    assert set(exports.values()) == {a for a in arns if a.endswith(f":{PREFIX}-alarms")}

    for name in reversed(stacks.values()):
        cfn.delete_stack(StackName=name)
    assert not deployed.clients.sqs.list_queues(QueueNamePrefix=f"{PREFIX}-").get("QueueUrls")
    assert not deployed.clients.sns.list_topics()["Topics"]
    # DeletionPolicy Retain: the table outlives its stack, as it would on AWS.
    assert deployed.clients.dynamodb.list_tables()["TableNames"] == [expected_table["name"]]
