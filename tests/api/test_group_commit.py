"""Concurrent requests share AWS calls, and concurrent repeats of one key still make one
event: the API in-process (ASGI) with many requests in flight at once."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import httpx

from api.group_commit import GroupCommit
from api.main import create_app
from core.aws.clients import AwsClients, CallLog
from tests.api.test_events import COMMENT
from tests.conftest import AUTH, Stack
from tests.listeners.test_batching import calls_since


def post_all(stack: Stack, tmp_path: Path, requests: list[tuple[dict[str, Any], dict[str, str]]]):
    """POST every (body, headers) at once; returns the responses and the AWS calls made."""
    settings = stack.settings.model_copy(update={"aws_call_log": str(tmp_path / "calls")})
    app = create_app(settings, AwsClients(settings))
    log = CallLog.for_path(str(tmp_path / "calls"))

    async def run() -> tuple[list[httpx.Response], dict[str, dict[str, int]]]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://herald", headers=AUTH
            ) as client:
                await client.get("/events?limit=1")  # warm: the key is cached, the topic known
                before = {service: dict(ops) for service, ops in log.counts.items()}
                responses = await asyncio.gather(
                    *(client.post("/events", json=body, headers=h) for body, h in requests)
                )
                return list(responses), calls_since(log, before)

    return asyncio.run(run())


def test_concurrent_events_share_transactions_and_publishes(stack: Stack, tmp_path: Path) -> None:
    bodies = [{**COMMENT, "user_id": f"u-{i}"} for i in range(30)]
    responses, calls = post_all(stack, tmp_path, [(b, {}) for b in bodies])

    assert [r.status_code for r in responses] == [202] * 30
    ids = {r.json()["event_id"] for r in responses}
    assert len(ids) == 30
    published = stack.receive_all("herald-test-events-normal")
    assert {json.loads(m["Body"])["event_id"] for m in published} == ids
    # Thirty events, a handful of calls: records share transactions, publishes batches.
    db = calls["dynamodb"]
    assert db.get("PutItem", 0) + db.get("TransactWriteItems", 0) <= 5
    assert calls["sns"]["PublishBatch"] <= 6
    for event_id in ids:
        got = stack.clients.dynamodb.get_item(
            TableName=stack.clients.names.table,
            Key={"PK": {"S": f"EVENT#{event_id}"}, "SK": {"S": "EVENT"}},
        )
        assert got["Item"]["status"]["S"] == "START"


def test_concurrent_repeats_of_one_key_make_one_event(stack: Stack, tmp_path: Path) -> None:
    same = [(COMMENT, {"Idempotency-Key": "order-7"}) for _ in range(10)]
    other = {**COMMENT, "data": {**COMMENT["data"], "text": "changed"}}
    changed = [(other, {"Idempotency-Key": "order-7"}) for _ in range(3)]
    responses, _ = post_all(stack, tmp_path, same + changed)

    codes = [r.status_code for r in responses]
    assert codes[:10].count(202) == 1 and codes[:10].count(200) == 9
    assert codes[10:] == [409, 409, 409]
    assert len({r.json()["event_id"] for r in responses[:10]}) == 1
    assert all(r.json()["duplicate"] for r in responses[:10] if r.status_code == 200)
    assert "order-7" not in responses[10].text and "event_id" in responses[10].json()["message"]
    assert len(stack.receive_all("herald-test-events-normal")) == 1


class Recorder:
    """A call that records each batch it is given and holds the first until released."""

    def __init__(self, fail: set[int] | None = None, raise_on: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.release = threading.Event()
        self.fail = fail or set()
        self.raise_on = raise_on

    def __call__(self, items: list[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        if len(self.batches) == 1:
            self.release.wait(5)
        if self.raise_on in items:
            raise ConnectionError("endpoint down")
        return [ValueError(f"bad {i}") if i in self.fail else i * 10 for i in items]


def run_group(call: Recorder, items: list[int], max_batch: int) -> list[Any]:
    async def run() -> list[Any]:
        group: GroupCommit[int, int] = GroupCommit(call, max_batch)
        first = asyncio.ensure_future(group.submit(items[0]))
        await asyncio.sleep(0.05)  # the first call is in flight (and held)
        rest = [asyncio.ensure_future(group.submit(i)) for i in items[1:]]
        await asyncio.sleep(0.05)
        call.release.set()
        outcomes = await asyncio.gather(first, *rest, return_exceptions=True)
        await group.drain()
        return list(outcomes)

    return asyncio.run(run())


def test_items_that_arrive_during_a_call_leave_together_in_the_next() -> None:
    call = Recorder(fail={4})
    outcomes = run_group(call, list(range(1, 8)), max_batch=100)
    # One call alone, then everything that queued behind it in one more.
    assert call.batches == [[1], [2, 3, 4, 5, 6, 7]]
    assert outcomes[:3] == [10, 20, 30]
    assert isinstance(outcomes[3], ValueError) and str(outcomes[3]) == "bad 4"
    assert outcomes[4:] == [50, 60, 70]


def test_full_batches_leave_at_once_and_a_failed_call_fails_only_its_items() -> None:
    call = Recorder(raise_on=4)
    outcomes = run_group(call, list(range(1, 8)), max_batch=3)
    # [1] is in flight; 2, 3, 4 fill a batch and go at once; 5, 6, 7 likewise.
    assert call.batches[0] == [1]
    assert sorted(call.batches[1:]) == [[2, 3, 4], [5, 6, 7]]
    assert outcomes[0] == 10
    assert all(isinstance(o, ConnectionError) for o in outcomes[1:4])
    assert outcomes[4:] == [50, 60, 70]


def test_a_linger_gathers_items_that_come_one_at_a_time() -> None:
    """Nothing in flight: without a linger each item leaves alone; with one, items that
    follow each other closely share a call (a full batch does not wait for the linger),
    and an item long after the one before it does not wait."""

    async def run(linger: float, max_batch: int, gap: float) -> list[list[int]]:
        batches: list[list[int]] = []

        def call(items: list[int]) -> list[int | BaseException]:
            batches.append(list(items))
            return [i * 10 for i in items]

        group: GroupCommit[int, int] = GroupCommit(call, max_batch, linger=linger)
        futures = [asyncio.ensure_future(group.submit(1))]
        await futures[0]  # nothing in flight once the first is answered
        for i in range(2, 5):
            await asyncio.sleep(gap)  # each alone on the loop for a moment
            futures.append(asyncio.ensure_future(group.submit(i)))
        assert await asyncio.gather(*futures) == [10, 20, 30, 40]
        await group.drain()
        return batches

    assert asyncio.run(run(linger=0.0, max_batch=100, gap=0.02))[0] == [1]
    # The first has no one before it: it goes at once; the next three come close together.
    assert asyncio.run(run(linger=30.0, max_batch=3, gap=0.02)) == [[1], [2, 3, 4]]
    # Gaps longer than the linger: nobody waits.
    assert asyncio.run(run(linger=0.05, max_batch=100, gap=0.2)) == [[1], [2], [3], [4]]


def test_a_lone_item_that_waited_for_a_call_lingers_for_company() -> None:
    """At a trickle the one event that came while a call was in flight does not leave
    alone when the call ends: it lingers, and the next ones join it."""

    async def run() -> list[list[int]]:
        call = Recorder()
        group: GroupCommit[int, int] = GroupCommit(call, 3, linger=30.0)
        first = asyncio.ensure_future(group.submit(1))
        await asyncio.sleep(0.05)  # the first call is in flight (and held)
        second = asyncio.ensure_future(group.submit(2))
        await asyncio.sleep(0.05)
        call.release.set()
        assert await first == 10
        rest = [asyncio.ensure_future(group.submit(i)) for i in (3, 4)]
        assert await asyncio.gather(second, *rest) == [20, 30, 40]
        await group.drain()
        return call.batches

    assert asyncio.run(run()) == [[1], [2, 3, 4]]
