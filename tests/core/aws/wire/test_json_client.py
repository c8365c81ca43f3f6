"""The lean path answers, fails and retries as botocore does, against the emulator, the
fault proxy and a loopback server that misbehaves on purpose."""

from __future__ import annotations

import json
import threading
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from core.aws import errors as aws_errors
from core.aws.clients import AwsClients
from core.aws.wire.facade import LeanClient
from core.platform.settings import Settings
from localstack.faults import FaultProxy, FaultRule
from tests.conftest import Stack


def both(settings: Settings) -> tuple[AwsClients, AwsClients]:
    lean = AwsClients(settings.model_copy(update={"aws_wire": "lean"}))
    plain = AwsClients(settings.model_copy(update={"aws_wire": "botocore"}))
    assert isinstance(lean.dynamodb, LeanClient)
    assert not isinstance(plain.dynamodb, LeanClient)
    return lean, plain


def without_metadata(answer: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in answer.items() if k != "ResponseMetadata"}


def key(name: str) -> dict[str, Any]:
    return {"PK": {"S": f"WIRE#{name}"}, "SK": {"S": "X"}}


def test_answers_are_botocores(stack: Stack) -> None:
    lean, plain = both(stack.settings)
    table = stack.clients.names.table
    item = {**key("same"), "n": {"N": "7"}, "tags": {"SS": ["a", "b"]}, "m": {"M": {}}}
    lean.dynamodb.put_item(TableName=table, Item=item)
    for clients in (lean, plain):
        got = clients.dynamodb.get_item(TableName=table, Key=key("same"), ConsistentRead=True)
        assert got["Item"] == item
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 200
    query = {
        "TableName": table,
        "KeyConditionExpression": "PK = :pk",
        "ExpressionAttributeValues": {":pk": key("same")["PK"]},
    }
    assert without_metadata(lean.dynamodb.query(**query)) == without_metadata(
        plain.dynamodb.query(**query)
    )


def test_a_refused_write_is_botocores_error_with_the_stored_item(stack: Stack) -> None:
    lean, plain = both(stack.settings)
    table = stack.clients.names.table
    stored = {**key("refused"), "status": {"S": "SENT"}}
    lean.dynamodb.put_item(TableName=table, Item=stored)
    errors = []
    for clients in (lean, plain):
        with pytest.raises(ClientError) as caught:
            clients.dynamodb.update_item(
                TableName=table,
                Key=key("refused"),
                UpdateExpression="SET #s = :new",
                ConditionExpression="#s = :old",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":new": {"S": "X"}, ":old": {"S": "SENDING"}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        errors.append(caught.value)
    ours, theirs = errors
    assert type(ours).__name__ == type(theirs).__name__  # each client makes its classes
    assert isinstance(ours, lean.dynamodb.exceptions.ConditionalCheckFailedException)
    assert ours.response["Error"] == theirs.response["Error"]
    assert aws_errors.refused_items(ours) == aws_errors.refused_items(theirs) == {0: stored}


def test_sqs_errors_carry_botocores_code_and_class(stack: Stack) -> None:
    lean, plain = both(stack.settings)
    errors = []
    for clients in (lean, plain):
        with pytest.raises(ClientError) as caught:
            clients.sqs.get_queue_url(QueueName="no-such-queue-anywhere")
        errors.append(caught.value)
    ours, theirs = errors
    assert type(ours).__name__ == type(theirs).__name__  # each client makes its classes
    assert ours.response["Error"]["Code"] == theirs.response["Error"]["Code"]


def test_throttling_is_retried_as_many_times_as_botocore_retries(
    stack: Stack, fault_proxy: FaultProxy, faulty_settings: Settings
) -> None:
    fault_proxy.set_rules([FaultRule("dynamodb", "throttle", 1.0, frozenset({"GetItem"}))])
    settings = faulty_settings.model_copy(update={"aws_max_attempts": 2})
    tries, codes = [], []
    for clients in both(settings):
        before = sum(fault_proxy.stats().values())
        with pytest.raises(ClientError) as caught:
            clients.dynamodb.get_item(TableName=clients.names.table, Key=key("throttled"))
        assert caught.value.response["ResponseMetadata"]["RetryAttempts"] == 1
        codes.append(aws_errors.error_code(caught.value))
        tries.append(sum(fault_proxy.stats().values()) - before)
    assert tries == [2, 2]
    assert set(codes) <= aws_errors.THROTTLING_CODES  # the proxy draws one of two codes


# --- a loopback server that misbehaves ---------------------------------------------------

Behaviour = Callable[[int, dict[str, Any]], tuple[int, dict[str, str], bytes, bool]]


class Misbehaving:
    """Answers the n-th request (from 0) with `behaviour(n, body)`: (status, headers,
    body, close the connection silently afterwards)."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                n = len(outer.requests)
                outer.requests.append(body)
                status, headers, payload, drop = behaviour(n, body)
                self.send_response(status)
                for name, value in {**headers, "Content-Length": str(len(payload))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
                self.wfile.flush()
                if drop:  # closed without "Connection: close": the client's copy is stale
                    self.close_connection = True

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def misbehaving() -> Iterator[Callable[[Behaviour], Misbehaving]]:
    servers: list[Misbehaving] = []

    def start(behaviour: Behaviour) -> Misbehaving:
        servers.append(Misbehaving(behaviour))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def clients_at(url: str, **values: Any) -> AwsClients:
    return AwsClients(
        Settings(
            _env_file=None,  # type: ignore[call-arg]
            AWS_ENDPOINT_URL=url,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            **values,
        )
    )


def ok(body: bytes = b"{}", crc: int | None = None) -> tuple[int, dict[str, str], bytes]:
    return 200, {"x-amz-crc32": str(zlib.crc32(body) if crc is None else crc)}, body


def test_a_connection_closed_while_idle_is_replaced_without_spending_a_try(
    misbehaving: Callable[[Behaviour], Misbehaving],
) -> None:
    server = misbehaving(lambda n, _: (*ok(b'{"Item": {}}'), n == 0))
    db = clients_at(server.url, aws_max_attempts=1).dynamodb
    db.get_item(TableName="t", Key=key("a"))
    answer = db.get_item(TableName="t", Key=key("b"))  # the kept connection is dead
    assert answer["Item"] == {}
    assert answer["ResponseMetadata"]["RetryAttempts"] == 0
    assert [r["Key"]["PK"]["S"] for r in server.requests] == ["WIRE#a", "WIRE#b"]


def test_an_answer_whose_crc32_does_not_match_is_asked_again(
    misbehaving: Callable[[Behaviour], Misbehaving],
) -> None:
    body = b'{"Item": {"v": {"S": "right"}}}'
    server = misbehaving(lambda n, _: (*ok(body, crc=1 if n == 0 else None), False))
    answer = clients_at(server.url, aws_max_attempts=2).dynamodb.get_item(
        TableName="t", Key=key("c")
    )
    assert answer["Item"] == {"v": {"S": "right"}}
    assert answer["ResponseMetadata"]["RetryAttempts"] == 1
    assert len(server.requests) == 2


def test_a_transaction_carries_one_idempotency_token_over_its_retries(
    misbehaving: Callable[[Behaviour], Misbehaving],
) -> None:
    def behaviour(n: int, _: dict[str, Any]) -> tuple[int, dict[str, str], bytes, bool]:
        if n == 0:
            error = b'{"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError"}'
            return 500, {}, error, False
        return (*ok(), False)

    server = misbehaving(behaviour)
    clients_at(server.url, aws_max_attempts=2).dynamodb.transact_write_items(
        TransactItems=[{"Put": {"TableName": "t", "Item": key("d")}}]
    )
    tokens = [r.get("ClientRequestToken") for r in server.requests]
    assert len(tokens) == 2 and tokens[0] and tokens[0] == tokens[1]


def test_a_server_error_after_the_last_try_is_a_may_have_applied_client_error(
    misbehaving: Callable[[Behaviour], Misbehaving],
) -> None:
    error = b'{"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError", "message": "x"}'
    server = misbehaving(lambda n, _: (500, {}, error, False))
    with pytest.raises(ClientError) as caught:
        clients_at(server.url, aws_max_attempts=1).dynamodb.update_item(
            TableName="t", Key=key("e"), UpdateExpression="SET a = :a"
        )
    assert aws_errors.error_code(caught.value) == "InternalServerError"
    assert aws_errors.may_have_applied(caught.value)


def test_an_answer_that_never_comes_is_a_read_timeout(
    misbehaving: Callable[[Behaviour], Misbehaving],
) -> None:
    release = threading.Event()

    def hang(n: int, _: dict[str, Any]) -> tuple[int, dict[str, str], bytes, bool]:
        release.wait(5)
        return (*ok(), False)

    server = misbehaving(hang)
    db = clients_at(server.url, aws_max_attempts=1, aws_timeout_seconds=0.3).dynamodb
    try:
        with pytest.raises(ReadTimeoutError) as caught:
            db.put_item(TableName="t", Item=key("f"))
    finally:
        release.set()
    assert aws_errors.may_have_applied(caught.value)


# --- SNS (the query protocol, through botocore's serializer and parser) -------------------


def test_sns_publishes_and_its_errors_are_botocores(stack: Stack) -> None:
    lean, plain = both(stack.settings)
    assert isinstance(lean.sns, LeanClient)
    topic = stack.clients.topic_arn
    entries = [
        {
            "Id": str(i),
            "Message": json.dumps({"n": i, "text": "ünïcode & = + ?"}),
            "MessageAttributes": {"priority": {"DataType": "String", "StringValue": "normal"}},
        }
        for i in range(3)
    ]
    answers = [
        c.sns.publish_batch(TopicArn=topic, PublishBatchRequestEntries=entries)
        for c in (lean, plain)
    ]
    for answer in answers:
        assert sorted(s["Id"] for s in answer["Successful"]) == ["0", "1", "2"]
        assert answer["Failed"] == []
    assert "MessageId" in lean.sns.publish(TopicArn=topic, Message="one")
    errors = []
    for clients in (lean, plain):
        with pytest.raises(ClientError) as caught:
            clients.sns.publish(TopicArn=topic + "-missing", Message="x")
        errors.append(caught.value)
    ours, theirs = errors
    assert type(ours).__name__ == type(theirs).__name__
    assert ours.response["Error"] == theirs.response["Error"]


def test_an_sns_batch_partly_failed_names_its_failures(
    stack: Stack, fault_proxy: FaultProxy, faulty_settings: Settings
) -> None:
    fault_proxy.set_rules([FaultRule("sns", "partial_batch", 1.0)])
    lean = AwsClients(faulty_settings.model_copy(update={"aws_wire": "lean"}))
    entries = [{"Id": str(i), "Message": f"m{i}"} for i in range(4)]
    answer = lean.sns.publish_batch(
        TopicArn=stack.clients.topic_arn, PublishBatchRequestEntries=entries
    )
    failed = {f["Id"] for f in answer["Failed"]}
    done = {s["Id"] for s in answer["Successful"]}
    assert failed and failed | done == {"0", "1", "2", "3"} and not failed & done
    assert all(f["Code"] and isinstance(f["SenderFault"], bool) for f in answer["Failed"])


def test_a_client_whose_endpoint_is_behind_a_proxy_stays_on_botocore(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lean path speaks to the endpoint directly; botocore honours the environment's
    proxy, so an endpoint the environment routes through one keeps botocore's path."""
    for name in ("NO_PROXY", "no_proxy", "http_proxy", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.internal:3128")  # the emulator is http
    assert not isinstance(AwsClients(stack.settings).dynamodb, LeanClient)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    assert isinstance(AwsClients(stack.settings).dynamodb, LeanClient)
