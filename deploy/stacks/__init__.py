"""The CDK stacks, one per lifecycle: `data` (the table, the secrets: kept, never
replaced), `messaging` (the topics, queues and DLQs), `compute` (the services, Fargate or
Lambda, their network, IAM and scaling), `observability` (alarms and the dashboard)."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """A cdk-nag finding accepted on `scope` and its children, with why (`rule` is the
    rule id, with `[finding]` for one finding of a rule that reports several)."""
    Validations.of(scope).acknowledge(Acknowledgment(id=f"AwsSolutions::{rule}", reason=reason))
