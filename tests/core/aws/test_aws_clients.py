"""AWS clients give up on an endpoint that does not answer instead of waiting on it."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import BotoCoreError

from core.aws.clients import AwsClients
from core.platform.settings import Settings


def settings_for(endpoint: str, **values: Any) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        **values,
    )


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A loopback server that accepts connections and never answers (a frozen endpoint)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_calls_wait_the_timeout_and_long_polls_their_wait_on_top() -> None:
    clients = AwsClients(
        settings_for("http://127.0.0.1:9", aws_timeout_seconds=2.5, wait_time_seconds=10)
    )
    assert clients.config("dynamodb").read_timeout == 2.5
    assert clients.config("sns").connect_timeout == 2.5
    assert clients.config("sqs").read_timeout == 12.5
    assert clients.config("sqs").retries == {"mode": "standard", "total_max_attempts": 2}


def test_aws_max_attempts_counts_every_try(
    stack: Any, faulty_settings: Any, fault_proxy: Any
) -> None:
    """botocore's `max_attempts` counts retries; the setting counts tries, the first included."""
    from botocore.exceptions import ClientError

    from localstack.faults import FaultRule

    fault_proxy.set_rules([FaultRule("dynamodb", "throttle", 1.0, frozenset({"DescribeTable"}))])
    clients = AwsClients(faulty_settings.model_copy(update={"aws_max_attempts": 2}))
    with pytest.raises(ClientError):
        clients.dynamodb.describe_table(TableName=stack.clients.names.table)
    assert sum(fault_proxy.stats().values()) == 2


def test_a_silent_endpoint_fails_the_call_instead_of_holding_it(silent_endpoint: str) -> None:
    clients = AwsClients(settings_for(silent_endpoint, aws_timeout_seconds=0.3, aws_max_attempts=1))
    with pytest.raises(BotoCoreError, match=r"[Tt]imeout"):
        clients.dynamodb.describe_table(TableName="anything")


def test_dynamodb_calls_go_to_their_own_endpoint_when_one_is_set(
    moto_endpoint: str, silent_endpoint: str
) -> None:
    # Everything else at an endpoint that never answers: only DynamoDB may succeed.
    clients = AwsClients(
        settings_for(
            silent_endpoint,
            AWS_ENDPOINT_URL_DYNAMODB=moto_endpoint,
            aws_timeout_seconds=0.3,
            aws_max_attempts=1,
            wait_time_seconds=0,
        )
    )
    assert "TableNames" in clients.dynamodb.list_tables()
    with pytest.raises(BotoCoreError):
        clients.sqs.list_queues()
