"""Whether DynamoDB and SNS answer, checked at most once per `HERALD_HEALTH_CACHE_SECONDS`.

`/health` is open (load balancers call it without a key), so every hit must not become a
DescribeTable and a GetTopicAttributes: the answer comes from the last check while it is
fresh, and one caller at a time refreshes it while the others get the last answer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from botocore.exceptions import BotoCoreError, ClientError

from core.aws.clients import AwsClients


class Readiness:
    def __init__(
        self,
        clients: AwsClients,
        max_age: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clients = clients
        self._max_age = max_age
        self._clock = clock
        self._checked_at: float | None = None
        self._results: dict[str, str] = {}
        self._refresh = threading.Lock()

    def results(self) -> dict[str, str]:
        """Per dependency, "ok" or the error's type; blocks (in a worker thread) only when
        no answer is fresh and no other caller is already refreshing it."""
        if self._fresh():
            return self._results
        if not self._refresh.acquire(blocking=self._checked_at is None):
            return self._results
        try:
            if not self._fresh():
                self._results = self._check()
                self._checked_at = self._clock()
            return self._results
        finally:
            self._refresh.release()

    def _fresh(self) -> bool:
        return self._checked_at is not None and self._clock() - self._checked_at < self._max_age

    def _check(self) -> dict[str, str]:
        clients = self._clients
        checks: dict[str, Callable[[], object]] = {
            "dynamodb": lambda: clients.dynamodb.describe_table(TableName=clients.names.table),
            "sns": lambda: clients.sns.get_topic_attributes(TopicArn=clients.topic_arn),
        }
        results: dict[str, str] = {}
        for name, check in checks.items():
            try:
                check()
                results[name] = "ok"
            except (ClientError, BotoCoreError) as exc:
                results[name] = f"error: {type(exc).__name__}"
        return results
