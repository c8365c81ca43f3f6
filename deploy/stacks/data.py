"""The table (point-in-time recovery, deletion protection, retained) and the secrets."""

from __future__ import annotations

from typing import Any

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from core.resources.declaration import Resources
from deploy.services import SECRETS
from deploy.stacks import acknowledge

PROJECTIONS = {
    "ALL": dynamodb.ProjectionType.ALL,
    "KEYS_ONLY": dynamodb.ProjectionType.KEYS_ONLY,
    "INCLUDE": dynamodb.ProjectionType.INCLUDE,
}


def _key(name: str) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=name, type=dynamodb.AttributeType.STRING)


class DataStack(Stack):
    def __init__(self, scope: Construct, id: str, *, resources: Resources, **kwargs: Any):
        super().__init__(scope, id, **kwargs)
        declared = resources.table
        self.table = dynamodb.Table(
            self,
            "Table",
            table_name=declared.name,
            partition_key=_key(declared.partition_key),
            sort_key=_key(declared.sort_key),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute=declared.ttl_attribute,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=declared.point_in_time_recovery
            ),
            deletion_protection=declared.deletion_protection,
            removal_policy=RemovalPolicy.RETAIN,
        )
        for index in declared.indexes:
            self.table.add_global_secondary_index(
                index_name=index.name,
                partition_key=_key(index.partition_key),
                sort_key=_key(index.sort_key),
                projection_type=PROJECTIONS[index.projection],
                non_key_attributes=list(index.non_key_attributes) or None,
            )
        self.secrets: dict[str, secretsmanager.Secret] = {}
        for name, keys in SECRETS.items():
            secret = secretsmanager.Secret(
                self,
                f"Secret-{name}",
                secret_name=f"{resources.prefix}/{name}",
                description=f"Herald: {name} ({', '.join(keys) or 'the whole string'}); "
                "put the real values with put-secret-value",
                removal_policy=RemovalPolicy.RETAIN,
            )
            self.secrets[name] = secret
            acknowledge(
                secret,
                "AwsSolutions-SMG4",
                "Third-party credentials (Twilio, SendGrid, data-source URLs) are rotated "
                "at their issuer, not by a rotation Lambda.",
            )
