"""The events topic and its filtered subscriptions, every queue with its DLQ and redrive,
and the alarm topic: all from the declaration provisioning reads."""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from core.resources.declaration import Resources
from deploy.stacks import acknowledge


class MessagingStack(Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        resources: Resources,
        alarm_email: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(scope, id, **kwargs)
        self.queues: dict[str, sqs.Queue] = {}
        for declared in [*resources.dead_letter_queues, *resources.work_queues]:
            dead_letter = None
            if declared.dead_letter_queue is not None:
                dead_letter = sqs.DeadLetterQueue(
                    max_receive_count=declared.max_receive_count or 1,
                    queue=self.queues[declared.dead_letter_queue],
                )
            visibility = declared.visibility_timeout_seconds
            self.queues[declared.name] = sqs.Queue(
                self,
                declared.name,
                queue_name=declared.name,
                retention_period=Duration.seconds(declared.retention_seconds),
                visibility_timeout=Duration.seconds(visibility) if visibility else None,
                dead_letter_queue=dead_letter,
                encryption=sqs.QueueEncryption.SQS_MANAGED,
                enforce_ssl=True,
                removal_policy=RemovalPolicy.DESTROY,
            )
        self.topic = sns.Topic(
            self, "Events", topic_name=resources.events_topic.name, enforce_ssl=True
        )
        for subscription in resources.events_topic.subscriptions:
            queue = self.queues[subscription.queue]
            queue.add_to_resource_policy(
                iam.PolicyStatement(
                    sid="AllowHeraldTopic",
                    principals=[iam.ServicePrincipal("sns.amazonaws.com")],
                    actions=["sqs:SendMessage"],
                    resources=[queue.queue_arn],
                    conditions={"ArnEquals": {"aws:SourceArn": self.topic.topic_arn}},
                )
            )
            # L1: the filter policy exactly as declared (and as provisioning sets it).
            sns.CfnSubscription(
                self,
                f"Subscription-{subscription.queue}",
                topic_arn=self.topic.topic_arn,
                protocol="sqs",
                endpoint=queue.queue_arn,
                raw_message_delivery=subscription.raw_message_delivery,
                filter_policy=subscription.filter_policy,
            )
        self.alarm_topic = sns.Topic(
            self, "Alarms", topic_name=resources.alarm_topic.name, enforce_ssl=True
        )
        if alarm_email:
            self.alarm_topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
        for topic in (self.topic, self.alarm_topic):
            acknowledge(
                topic,
                "AwsSolutions-SNS2",
                "The topics hold no message at rest: SNS hands events at once to the router "
                "queues, which are encrypted (SSE-SQS), and alarms to their subscribers; a "
                "KMS key would add a key policy and a KMS call to every publish.",
            )
