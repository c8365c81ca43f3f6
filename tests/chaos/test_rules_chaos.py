"""Alert rules under fault: a data source that hangs (a black hole that accepts), one that
drops connections (a proxy that cuts each after a moment), the scheduler killed mid-pass and
the evaluator killed mid-run, while rules fire on real PostgreSQL data and recover.

Accounted at the end: every due run of every rule was evaluated (or counted as skipped by a
catch-up), each once (an evaluation per run, never two pages for one alert); every alert
that paged was resolved when the data recovered (no stale page); nothing is stuck (the
rules queues, their DLQs and every rule's unpublished events are empty, every process
runs). A listening rule's NOTIFY is evaluated through the same kills."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import pytest

from alerting.due import CLAIM_SK, bucket_of, due_pk
from alerting.rule_store import RuleStore
from alerting.schedule import next_due
from core.aws import dynamo
from core.catalogue.models import utcnow
from tests.alerting.conftest import Database, postgres_server
from tests.chaos.accounting import Outcome
from tests.chaos.harness import ChaosStack
from tests.chaos.report import RESULTS
from tests.chaos.scale import Scale
from tests.chaos.tcp_proxy import TcpProxy
from tests.chaos.workload import api_client
from tests.support import wait_until

pytestmark = pytest.mark.timeout(1200)

SCHEDULE = "every 10s"
INTERVAL = timedelta(seconds=10)
CHANNEL = "level_changed"


@dataclass(frozen=True)
class RuleScale:
    steady: int  # paging rules on the steady data source (one of them listens)
    dropping: int  # paging rules on the data source that drops connections
    hung: int  # rules on the data source that hangs
    rounds: int  # fire, kill, recover: this many times


RULE_SCALE = {"small": RuleScale(6, 3, 2, 1), "full": RuleScale(24, 8, 4, 2)}


@pytest.fixture(scope="module")
def warehouse() -> Iterator[Database]:
    with postgres_server() as server:
        db = Database("warehouse", server.url)
        db.execute("CREATE TABLE level (v int)", "INSERT INTO level VALUES (0)")
        yield db


@pytest.fixture
def proxies(chaos: ChaosStack, warehouse: Database) -> Iterator[dict[str, TcpProxy]]:
    upstream = int(warehouse.url.rsplit(":", 1)[1].split("/", 1)[0])
    modes = {"steady": "pass", "hung": "hang", "dropping": "cut"}
    started = {
        name: TcpProxy(port, upstream, modes[name]).start()  # type: ignore[arg-type]
        for name, port in chaos.datasource_ports.items()
    }
    try:
        yield started
    finally:
        for proxy in started.values():
            proxy.stop()


def rule_body(datasource: str, rule_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": rule_id,
        "schedule": SCHEDULE,
        "source": {"kind": "sql", "datasource": datasource, "query": "SELECT v FROM level"},
        "condition": {"kind": "threshold", "column": "v", "op": ">", "value": 10},
        "recipients": {"to": {"email": [f"{rule_id}@example.com"]}},
        **extra,
    }


def pages_by_address(stack: ChaosStack) -> dict[str, Counter[str]]:
    """Delivered emails: address → how many deliveries of each notification."""
    found: dict[str, Counter[str]] = {}
    for message in stack.sandbox("GET", "/sandbox/messages?provider=sendgrid"):
        status = message.get("status") or 0
        mail = message.get("json") or {}
        if not 200 <= status < 300 or not mail.get("personalizations"):
            continue
        address = mail["personalizations"][0]["to"][0]["email"]
        found.setdefault(address, Counter())[str(message.get("notification_id"))] += 1
    return found


def paged(stack: ChaosStack, rule_ids: list[str], count: int) -> bool:
    """Every rule's address has been sent `count` notifications (distinct ones)."""
    pages = pages_by_address(stack)
    return all(len(pages.get(f"{r}@example.com", ())) >= count for r in rule_ids)


def claimed_shard(stack: ChaosStack, clients: Any) -> bool:
    """A scheduler holds a shard of the current minute: it is mid-pass."""
    bucket = bucket_of(utcnow())
    keys = [
        {dynamo.PK: {"S": due_pk(bucket, shard)}, dynamo.SK: {"S": CLAIM_SK}}
        for shard in range(stack.settings.scheduler_shards)
    ]
    items = dynamo.batch_get(clients.dynamodb, clients.names.table, keys, consistent=True)
    return any("owner" in item for item in items)


def queues_empty(clients: Any) -> bool:
    names = clients.names
    for lane in ("critical", "normal"):
        for queue in (names.rules_queue(lane), names.dlq_of(names.rules_queue(lane))):
            attrs = clients.sqs.get_queue_attributes(
                QueueUrl=clients.queue_url(queue), AttributeNames=["All"]
            )["Attributes"]
            counts = ("", "NotVisible", "Delayed")
            if any(int(attrs[f"ApproximateNumberOfMessages{c}"]) for c in counts):
                return False
    return True


def evaluations(store: RuleStore, rule_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page, cursor = store.evaluations(rule_id, 100, cursor)
        found += page
        if cursor is None:
            return found


def unpublished(clients: Any, rule_id: str) -> int:
    resp = clients.dynamodb.query(
        TableName=clients.names.table,
        KeyConditionExpression="PK = :pk AND begins_with(SK, :o)",
        ExpressionAttributeValues={":pk": {"S": f"RULE#{rule_id}"}, ":o": {"S": "OUT#"}},
        ConsistentRead=True,
    )
    return len(resp.get("Items", []))


def missing_runs(rule: dict[str, Any], records: list[dict[str, Any]], until: datetime) -> list[str]:
    """Due times up to `until` with neither an evaluation nor a catch-up that skipped them."""
    covered: set[datetime] = set()
    for record in records:
        if record.get("trigger", "schedule") != "schedule":
            continue
        run = datetime.fromisoformat(record["run"])
        covered.add(run)
        for back in range(1, int(record.get("skipped_runs") or 0) + 1):
            covered.add(run - back * INTERVAL)
    due = next_due(SCHEDULE, "UTC", datetime.fromisoformat(rule["created_at"]))
    missing = []
    while due <= until:
        if due not in covered:
            missing.append(f"{rule['id']}@{due.isoformat()}")
        due += INTERVAL
    return missing


def kill_scheduler_mid_pass(stack: ChaosStack, clients: Any) -> bool:
    """Kill the scheduler while it holds a shard (or, if never seen holding one within a
    few passes, as a pass is due); whether it was caught holding one."""
    caught = wait_until(lambda: claimed_shard(stack, clients), timeout=35, interval=0.02)
    stack.kill9(stack.names("scheduler")[0])
    return caught


def kill_evaluator_mid_run(stack: ChaosStack, hung: TcpProxy) -> bool:
    """Kill the evaluator while it waits on the hung data source."""
    caught = wait_until(lambda: hung.open_connections > 0, timeout=35, interval=0.02)
    stack.kill9(stack.names("evaluator")[0])
    return caught


def test_rules_with_hung_and_dropping_sources_and_kills(
    chaos: ChaosStack, scale: Scale, warehouse: Database, proxies: dict[str, TcpProxy]
) -> None:
    size = RULE_SCALE[scale.name]
    clients = chaos.clients()
    store = RuleStore(clients.dynamodb, clients.names.table, chaos.settings.scheduler_shards)
    paging = [f"steady-{i}" for i in range(size.steady)]
    paging += [f"dropping-{i}" for i in range(size.dropping)]
    hung = [f"hung-{i}" for i in range(size.hung)]
    with api_client(chaos.api_url) as api:
        for rule_id in paging + hung:
            source = rule_id.split("-", 1)[0]
            extra = {"listen": CHANNEL} if rule_id == "steady-0" else {}
            resp = api.put(f"/rules/{rule_id}", json=rule_body(source, rule_id, **extra))
            assert resp.status_code == 201, resp.text
        rules = {r: api.get(f"/rules/{r}").json() for r in paging + hung}

        def evaluated_once() -> bool:
            return all(evaluations(store, r) for r in paging + hung)

        assert wait_until(evaluated_once, timeout=90, interval=1), "rules never ran"
        notes: list[str] = []
        mid_pass = mid_run = 0
        for round_ in range(1, size.rounds + 1):
            warehouse.execute("UPDATE level SET v = 50", f"NOTIFY {CHANNEL}")
            mid_pass += kill_scheduler_mid_pass(chaos, clients)
            mid_run += kill_evaluator_mid_run(chaos, proxies["hung"])

            triggered = partial(paged, chaos, paging, 2 * round_ - 1)
            assert wait_until(triggered, timeout=120, interval=1), pages_by_address(chaos)
            warehouse.execute("UPDATE level SET v = 0", f"NOTIFY {CHANNEL}")
            mid_run += kill_evaluator_mid_run(chaos, proxies["hung"])
            recovered = partial(paged, chaos, paging, 2 * round_)
            assert wait_until(recovered, timeout=120, interval=1), pages_by_address(chaos)

        def none_open() -> bool:
            return not api.get("/alerts", params={"state": "open"}).json()["items"]

        resolved = wait_until(none_open, timeout=60, interval=1)
    until = utcnow() - timedelta(seconds=2)

    def caught_up() -> bool:
        """Every run due by `until` evaluated: a run due just before it may not even have
        been sent yet (the scheduler's next pass), so an empty queue alone proves nothing."""
        return not any(missing_runs(rules[r], evaluations(store, r), until) for r in paging + hung)

    wait_until(caught_up, timeout=120, interval=1)
    drained = wait_until(lambda: queues_empty(clients), timeout=90, interval=1)
    time.sleep(1)  # the last recorded run's outbox is cleared after its publish
    records = {r: evaluations(store, r) for r in paging + hung}
    missing = [m for r in paging + hung for m in missing_runs(rules[r], records[r], until)]
    pages = pages_by_address(chaos)
    expected_pages = 2 * size.rounds * len(paging)
    delivered = sum(len(pages.get(f"{r}@example.com", ())) for r in paging)
    repeated = {a: n - 1 for a, ids in pages.items() for n in ids.values() if n > 1}
    extra_pages = [
        f"{r}: {len(pages.get(f'{r}@example.com', ()))} pages"
        for r in paging
        if len(pages.get(f"{r}@example.com", ())) != 2 * size.rounds
    ]
    hung_pages = [a for a in pages if a.startswith("hung-")]
    stuck = [f"{r}: {n} unpublished" for r in paging + hung if (n := unpublished(clients, r))]
    if not drained:
        stuck.append("rules queues not drained")
    notify_runs = [e for e in records["steady-0"] if e.get("trigger") == "notify"]
    errors = sum(e["outcome"] == "error" for r in hung for e in records[r])
    dropped = proxies["dropping"].cuts
    outcome = Outcome(
        "rules: hung + dropping sources, scheduler and evaluator kill -9",
        notifications=expected_pages,
        sent=delivered,
        lost=missing,
        duplicates=repeated,
        unexpected=extra_pages + hung_pages,
        unsettled_events=stuck + ([] if resolved else ["alerts still open"]),
    )
    outcome.notes.append(
        f"{sum(map(len, records.values()))} evaluations of {len(records)} rules; "
        f"scheduler killed {size.rounds}x ({mid_pass} holding a shard), evaluator "
        f"{2 * size.rounds}x ({mid_run} waiting on the hung source); {errors} hung-source "
        f"error runs; {dropped} connections cut; {len(notify_runs)} NOTIFY runs"
    )
    notes += [f"missing run: {m}" for m in missing[:3]]
    outcome.notes += notes
    RESULTS.append(outcome)
    assert missing == [], missing[:20]
    assert repeated == {}, repeated
    assert extra_pages == [] and hung_pages == [], (extra_pages, hung_pages)
    assert stuck == [] and resolved, stuck
    assert notify_runs, "the listening rule's NOTIFY was never evaluated"
    assert errors > 0, "the hung data source never answered an error"
    assert mid_run >= 1, "the evaluator was never caught mid-run"
    assert wait_until(chaos.all_running, timeout=30), chaos.processes()
