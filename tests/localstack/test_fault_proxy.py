"""Running the fault proxy: pass-through without rules, keep-alive and concurrency, the
control endpoint, seeded determinism, the command line, and rule validation."""

from __future__ import annotations

import http.client
import json
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from core.aws.clients import AwsClients
from core.platform.settings import Settings
from localstack.faults import (
    DYNAMODB_WRITES,
    SNS_PUBLISHES,
    SQS_BATCH_WRITES,
    FaultProxy,
    FaultRule,
    aws_under_load,
)
from localstack.provision import provision
from tests.conftest import Stack, reset_emulator
from tests.localstack.test_faults import put, stored
from tests.support import free_port, http_ok, start_python, stop, wait_until


def control(proxy: FaultProxy, method: str, data: Any = None) -> tuple[int, Any]:
    body = None if data is None else json.dumps(data).encode()
    request = urllib.request.Request(f"{proxy.url}/_faults", data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def faulty(faulty_settings: Settings) -> AwsClients:
    return AwsClients(faulty_settings)


def test_no_rules_is_pure_pass_through(
    moto_endpoint: str, fault_proxy: FaultProxy, faulty_settings: Settings
) -> None:
    reset_emulator(moto_endpoint)
    clients = AwsClients(faulty_settings)
    provision(faulty_settings, clients)
    direct = AwsClients(faulty_settings.model_copy(update={"aws_endpoint_url": moto_endpoint}))
    names = direct.names
    assert direct.dynamodb.describe_table(TableName=names.table)["Table"]["TableStatus"] == "ACTIVE"
    queues = direct.sqs.list_queues(QueueNamePrefix=faulty_settings.resource_prefix)["QueueUrls"]
    expected = {*names.work_queues(), *map(names.dlq_of, names.work_queues())}
    assert {url.rsplit("/", 1)[1] for url in queues} == expected
    subscriptions = direct.sns.list_subscriptions_by_topic(TopicArn=direct.topic_arn)
    assert len(subscriptions["Subscriptions"]) == 2
    assert fault_proxy.stats() == {}


def test_keep_alive_moto_api_and_concurrent_requests(
    stack: Stack, fault_proxy: FaultProxy, faulty: AwsClients
) -> None:
    host, port = fault_proxy.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    for _ in range(2):  # one connection, two requests
        conn.request("GET", "/moto-api/")
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read()
    conn.close()
    errors: list[Exception] = []

    def writer(n: int) -> None:
        try:
            for i in range(10):
                put(faulty, f"concurrent-{n}-{i}")
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert all(stored(stack, f"concurrent-{n}-{i}") for n in range(8) for i in range(10))


def test_control_endpoint(stack: Stack, fault_proxy: FaultProxy, faulty: AwsClients) -> None:
    rule = {"service": "dynamodb", "kind": "throttle", "rate": 1.0, "operations": ["PutItem"]}
    status, data = control(fault_proxy, "PUT", {"rules": [rule]})
    assert status == 200 and data["rules"] == [{**rule, "hold_seconds": 5.0}]
    with pytest.raises(ClientError):
        put(faulty, "switched")
    status, data = control(fault_proxy, "GET")
    assert data["stats"]["throttle:PutItem"] >= 1 and data["rules"]
    assert control(fault_proxy, "DELETE")[1]["rules"] == []
    put(faulty, "switched")
    assert stored(stack, "switched")
    status, data = control(fault_proxy, "PUT", {"rules": [{**rule, "rate": 2}]})
    assert status == 400 and data["message"].startswith("rules[0].rate:")
    status, data = control(
        fault_proxy, "PUT", {"rules": [{**rule, "kind": "conflict", "service": "sqs"}]}
    )
    assert status == 400 and data["message"].startswith("rules[0].kind:")
    assert control(fault_proxy, "GET")[1]["rules"] == []


def test_same_seed_same_faults(moto_endpoint: str, stack: Stack, settings: Settings) -> None:
    def outcomes() -> tuple[list[str], dict[str, int]]:
        with FaultProxy(moto_endpoint, seed=42) as proxy:
            proxy.set_rules([FaultRule("dynamodb", "conflict", 0.5)])  # never retried
            clients = AwsClients(settings.model_copy(update={"aws_endpoint_url": proxy.url}))
            seen = []
            for i in range(20):
                try:
                    put(clients, f"seeded-{i}")
                    seen.append("ok")
                except ClientError as exc:
                    seen.append(str(exc.response["Error"]["Code"]))
            return seen, proxy.stats()

    (first, first_stats), (second, second_stats) = outcomes(), outcomes()
    assert first == second and first_stats == second_stats
    assert set(first) == {"ok", "TransactionConflictException"}


def test_cli_serves_the_rules_it_was_given(moto_endpoint: str, tmp_path: Path) -> None:
    port = free_port()
    rules = json.dumps([{"service": "sns", "kind": "unavailable", "rate": 0.5}])
    proc = start_python(
        [
            "-m",
            "localstack.faults",
            "--upstream",
            moto_endpoint,
            "--port",
            str(port),
            "--rules",
            rules,
        ],
        log_path=tmp_path / "faults.log",
    )
    try:
        url = f"http://127.0.0.1:{port}"
        assert wait_until(lambda: http_ok(f"{url}/_faults"), timeout=15), (
            tmp_path / "faults.log"
        ).read_text()
        with urllib.request.urlopen(f"{url}/_faults", timeout=5) as resp:
            assert [r["kind"] for r in json.loads(resp.read())["rules"]] == ["unavailable"]
        assert http_ok(f"{url}/moto-api/")
    finally:
        stop(proc)


def test_under_load_totals_the_rate_for_each_write() -> None:
    rules = aws_under_load(0.2)
    for service, operations in (
        ("dynamodb", DYNAMODB_WRITES),
        ("sqs", SQS_BATCH_WRITES),
        ("sns", SNS_PUBLISHES),
    ):
        for operation in operations:
            total = sum(r.rate for r in rules if r.applies_to(service, operation))
            assert total == pytest.approx(0.2), (service, operation)
    assert not any(r.applies_to("sqs", "ReceiveMessage") for r in rules)
    assert not any(r.applies_to("dynamodb", "GetItem") for r in rules)


def test_rules_name_what_is_wrong() -> None:
    with pytest.raises(ValueError, match=r"^kind:"):
        FaultRule("sns", "transaction_conflict", 0.1)
    with pytest.raises(ValueError, match=r"^operations:"):
        FaultRule("dynamodb", "conflict", 0.1, frozenset({"TransactWriteItems"}))
    with pytest.raises(ValueError, match=r"^rate:"):
        FaultRule("sqs", "throttle", -0.1)
    with pytest.raises(ValueError, match=r"^service:"):
        FaultRule("s3", "throttle", 0.1)
