"""The one place AWS clients are built.

Processes build one `AwsClients` at start and pass it down; nothing else calls
`boto3.client`, so the endpoint, region, pool size and retry policy are set once.

With `HERALD_AWS_CALL_LOG=<path>` every client counts its calls per service and operation
and the process writes the counts to `<path>.<pid>.json` every few seconds and at exit
(the benchmarks sum these files: AWS requests per notification).
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.utils import get_environ_proxies

from core.aws import call_metrics
from core.aws.names import ResourceNames
from core.aws.wire.calls import CallObserver, Codec, WireClient
from core.aws.wire.connections import ConnectionPool
from core.aws.wire.facade import LEAN_OPERATIONS, LeanClient
from core.aws.wire.json_codec import JsonCodec
from core.aws.wire.query_codec import QueryCodec
from core.aws.wire.signing import SigV4Signer
from core.platform.settings import Settings

CALL_LOG_FLUSH_SECONDS = 2.0


class CallLog:
    """Counts AWS calls of this process by (service, operation); one per log path."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.counts: dict[str, dict[str, int]] = {}
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._dirty = True
        self._pid = os.getpid()

    @classmethod
    def for_path(cls, path: str) -> CallLog:
        with _call_logs_lock:
            log = _call_logs.get(path)
            if log is None:
                log = _call_logs[path] = cls(path)
                log.write()
                atexit.register(log.write)
                threading.Thread(target=log._flush_forever, daemon=True, name="aws-calls").start()
            return log

    def after_call(self, model: Any, **_: Any) -> None:
        self.count(model.service_model.service_name, model.name)

    def count(self, service: str, operation: str, *_: Any) -> None:
        with self._lock:
            per_service = self.counts.setdefault(service, {})
            per_service[operation] = per_service.get(operation, 0) + 1
            self._dirty = True

    def write(self) -> None:
        with self._write_lock:
            with self._lock:
                if not self._dirty:
                    return
                snapshot = {service: dict(ops) for service, ops in self.counts.items()}
                self._dirty = False
            target = f"{self.path}.{self._pid}.json"
            try:
                with open(f"{target}.tmp", "w") as out:
                    json.dump({"pid": self._pid, "calls": snapshot}, out, sort_keys=True)
                os.replace(f"{target}.tmp", target)  # readers never see a half-written file
            except OSError:  # the directory went away: counting is best effort
                self._dirty = True

    def _flush_forever(self) -> None:
        while True:
            time.sleep(CALL_LOG_FLUSH_SECONDS)
            self.write()


def _proxied(url: str) -> bool:
    """Whether botocore would reach `url` through a proxy from the environment
    (`HTTPS_PROXY`, not bypassed by `NO_PROXY`): the lean path speaks to the endpoint
    directly, so such a client stays on botocore's path."""
    scheme = urlsplit(url).scheme
    return bool(get_environ_proxies(url).get(scheme))


_call_logs: dict[str, CallLog] = {}
_call_logs_lock = threading.Lock()


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

    def config(self, service: str) -> Config:
        """Standard retry mode retries throttling and transient errors with backoff; few
        attempts, because our own queues retry at a higher level.

        Timeouts are short so an endpoint that stops answering fails the call instead of
        holding it: the API answers 503 with Retry-After within a few seconds, and consumers
        back off. SQS gets the long-poll wait on top, or every receive would time out.
        """
        timeout = self.settings.aws_timeout_seconds
        read_timeout = timeout + (self.settings.wait_time_seconds if service == "sqs" else 0)
        return Config(
            # The service validates every request anyway; botocore's own pass over the
            # parameters costs CPU on every call.
            parameter_validation=False,
            max_pool_connections=self.settings.aws_max_pool_connections,
            retries={"mode": "standard", "total_max_attempts": self.settings.aws_max_attempts},
            connect_timeout=timeout,
            read_timeout=read_timeout,
        )

    def endpoint_url(self, service: str) -> str | None:
        if service == "dynamodb" and self.settings.aws_endpoint_url_dynamodb:
            return self.settings.aws_endpoint_url_dynamodb
        return self.settings.aws_endpoint_url

    def client(self, service: str) -> Any:
        config = self.config(service)
        client = self.session.client(
            service,
            endpoint_url=self.endpoint_url(service),
            config=config,
        )
        client.meta.events.register("after-call", call_metrics.after_aws_call)
        client.meta.events.register("after-call-error", call_metrics.after_aws_call_error)
        if self.settings.aws_call_log:
            client.meta.events.register(
                "after-call", CallLog.for_path(self.settings.aws_call_log).after_call
            )
        lean = self.settings.aws_wire == "lean" and service in LEAN_OPERATIONS
        if lean and not _proxied(client.meta.endpoint_url):
            return self._lean(client, config)
        return client

    def _lean(self, client: Any, config: Config) -> LeanClient:
        """`client` with its data-plane calls on the lean path (`core.aws.wire`): same
        endpoint, region, credentials, timeouts, pool size and retry policy."""
        pool = ConnectionPool(
            client.meta.endpoint_url,
            size=self.settings.aws_max_pool_connections,
            connect_timeout=float(config.connect_timeout),
            read_timeout=float(config.read_timeout),
        )
        signer = SigV4Signer(
            client.meta.service_model.signing_name,
            client.meta.region_name,
            self.session.get_credentials,
        )
        observers: list[CallObserver] = [call_metrics.count_call]
        if self.settings.aws_call_log:
            observers.append(CallLog.for_path(self.settings.aws_call_log).count)
        model = client.meta.service_model
        codec: Codec = QueryCodec() if model.protocol == "query" else JsonCodec(model)
        wire = WireClient(
            client,
            codec,
            pool,
            signer,
            max_attempts=self.settings.aws_max_attempts,
            observers=observers,
        )
        return LeanClient(client, wire)

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
