"""The one place AWS clients are built.

Processes build one `AwsClients` at start and pass it down; nothing else calls
`boto3.client`, so the endpoint, region, pool size and retry policy are set once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import boto3
from botocore.config import Config

from core.names import ResourceNames
from core.settings import Settings


@dataclass
class AwsClients:
    settings: Settings
    _queue_urls: dict[str, str] = field(default_factory=dict)

    @cached_property
    def session(self) -> boto3.session.Session:
        return boto3.session.Session(
            aws_access_key_id=self.settings.aws_access_key_id,
            aws_secret_access_key=self.settings.aws_secret_access_key,
            region_name=self.settings.aws_region,
        )

    @cached_property
    def config(self) -> Config:
        # Standard retry mode retries throttling and transient errors with backoff; a few
        # attempts only, because our own queues retry at a higher level.
        return Config(
            max_pool_connections=self.settings.aws_max_pool_connections,
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=5,
            read_timeout=25,
        )

    def client(self, service: str) -> Any:
        return self.session.client(
            service,
            endpoint_url=self.settings.aws_endpoint_url,
            config=self.config,
        )

    @cached_property
    def names(self) -> ResourceNames:
        return ResourceNames(self.settings.resource_prefix)

    @cached_property
    def sns(self) -> Any:
        return self.client("sns")

    @cached_property
    def sqs(self) -> Any:
        return self.client("sqs")

    @cached_property
    def dynamodb(self) -> Any:
        return self.client("dynamodb")

    @cached_property
    def topic_arn(self) -> str:
        """Derived from the topic name: CreateTopic is idempotent and returns the ARN."""
        return str(self.sns.create_topic(Name=self.names.topic)["TopicArn"])

    def queue_url(self, name: str) -> str:
        url = self._queue_urls.get(name)
        if url is None:
            url = str(self.sqs.get_queue_url(QueueName=name)["QueueUrl"])
            self._queue_urls[name] = url
        return url
