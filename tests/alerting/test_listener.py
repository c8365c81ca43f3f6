"""Real-time rules: a NOTIFY on a listening rule's channel gets the rule evaluated, through
the rules queue and the evaluator, against real PostgreSQL and the emulator.

The listener mostly runs in the test's process, its turns taken by a thread (`Driven`);
the lease is tested with two `python -m alerting.listener` processes, one of them killed.
Waits have generous deadlines; nothing passes or fails on how fast it was."""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from alerting.evaluator import Evaluator
from alerting.listen_connection import APPLICATION_NAME
from alerting.listen_lease import ListenLeases
from alerting.listener import Listener
from alerting.rule_store import RuleStore
from alerting.rules import RuleIn
from core.catalogue.models import iso, utcnow
from core.platform.settings import Settings
from listeners.batch import BatchSettler
from listeners.messages import QueueMessage
from tests.alerting.conftest import PREFIX, Database, PostgresServer, postgres_server
from tests.conftest import Stack
from tests.support import start_python, stop, wait_until

CHANNEL = "orders_changed"
PATIENCE = 60.0


def listen_settings(stack: Stack, db: Database, **extra: Any) -> Settings:
    return stack.settings.model_copy(
        update={
            "datasources": json.dumps({db.name: db.url}),
            "listen_debounce_seconds": 0.5,
            "listen_lease_seconds": 3.0,
            "listen_rules_refresh_seconds": 0.2,
            "listen_reconnect_max_seconds": 1.0,
            **extra,
        }
    )


def put_rule(settings: Settings, stack: Stack, rule_id: str, **fields: Any) -> None:
    body = {
        "name": rule_id,
        "schedule": "every 1h",  # the safety net, out of the way of the test
        "source": {
            "kind": "sql",
            "datasource": "warehouse",
            "query": "SELECT count(*) AS n FROM orders",
        },
        "condition": {"kind": "threshold", "column": "n", "op": ">", "value": 1000},
        "recipients": {"topic": "ops"},
        "listen": CHANNEL,
        **fields,
    }
    RuleStore(stack.clients.dynamodb, stack.clients.names.table, settings.scheduler_shards).put(
        rule_id, RuleIn.model_validate(body)
    )


class Driven:
    """A listener whose turns a thread takes until `stop`: each turn rereads the rules and
    renews the leases, so a test need not wait for the process's intervals."""

    def __init__(self, settings: Settings, stack: Stack, owner: str) -> None:
        self.listener = Listener(settings, stack.clients, owner=owner)
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._turns, daemon=True)
        self._thread.start()

    def _turns(self) -> None:
        while not self._halt.is_set():
            # As the process's loop: a failed turn is tried again the next.
            with contextlib.suppress(Exception):
                self.listener.step(refresh=True, renew=True)
            self._halt.wait(0.1)

    def stop(self) -> None:
        self._halt.set()
        self._thread.join(10)
        self.listener.close()


@pytest.fixture
def orders(pg_database: Database) -> Database:
    pg_database.execute("CREATE TABLE orders (id int PRIMARY KEY)")
    return pg_database


@pytest.fixture
def settings_for(stack: Stack) -> Any:
    return lambda db, **extra: listen_settings(stack, db, **extra)


@pytest.fixture
def driven(stack: Stack) -> Iterator[Any]:
    started: list[Driven] = []

    def start(settings: Settings, owner: str = "l1") -> Driven:
        started.append(Driven(settings, stack, owner))
        return started[-1]

    yield start
    for one in started:
        one.stop()


def evaluate_pending(stack: Stack, evaluator: Evaluator) -> None:
    for lane in ("critical", "normal"):
        queue = f"{PREFIX}-rules-{lane}"
        messages = [QueueMessage.from_sqs(queue, m) for m in stack.receive_all(queue, 1)]
        if messages:
            results = evaluator(messages)
            BatchSettler(stack.clients.sqs, stack.clients.queue_url).settle(messages, results)


def evaluations(stack: Stack, rule_id: str) -> list[dict[str, Any]]:
    items, _ = RuleStore(stack.clients.dynamodb, stack.clients.names.table, 8).evaluations(
        rule_id, 100, None
    )
    return items


def runs_of(stack: Stack, rule_id: str, trigger: str, after: str = "") -> list[dict[str, Any]]:
    return [
        e
        for e in evaluations(stack, rule_id)
        if e.get("trigger") == trigger and e["run"] > after and e["outcome"] != "skipped"
    ]


def wait_for_run(
    stack: Stack, evaluator: Evaluator, rule_id: str, trigger: str, after: str = ""
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def recorded() -> bool:
        evaluate_pending(stack, evaluator)
        found[:] = runs_of(stack, rule_id, trigger, after)
        return bool(found)

    assert wait_until(recorded, timeout=PATIENCE, interval=0.2), evaluations(stack, rule_id)
    return found


def notify(db: Database, count: int = 1) -> str:
    """NOTIFY `count` times in one transaction (distinct payloads, so none is folded);
    the time before it, as a run id compares."""
    before = iso(utcnow())
    db.execute(f"SELECT pg_notify('{CHANNEL}', g::text) FROM generate_series(1, {count}) g")
    return before


def listening_backends(db: Database) -> list[str]:
    engine = create_engine(db.url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT query FROM pg_stat_activity "
                    "WHERE application_name = :name AND datname = current_database()"
                ),
                {"name": APPLICATION_NAME},
            )
            return [str(r[0]) for r in rows]
    finally:
        engine.dispose()


def test_a_notify_runs_the_rule_through_the_evaluator(
    stack: Stack, orders: Database, settings_for: Any, driven: Any
) -> None:
    settings = settings_for(orders)
    put_rule(settings, stack, "live")
    evaluator = Evaluator(settings, stack.clients)
    driven(settings)
    connected = wait_for_run(stack, evaluator, "live", "connect")  # the run on connecting
    orders.execute("INSERT INTO orders SELECT generate_series(1, 1001)")
    before = notify(orders)
    runs = wait_for_run(stack, evaluator, "live", "notify", after=before)
    assert len(runs) == 1
    assert runs[0]["outcome"] == "firing", runs  # it read the rows committed before NOTIFY
    assert connected[0]["outcome"] == "ok"
    assert datetime.fromisoformat(runs[0]["run"]) > datetime.fromisoformat(before)


def test_a_burst_of_notifies_is_one_run(
    stack: Stack, orders: Database, settings_for: Any, driven: Any
) -> None:
    settings = settings_for(orders, listen_debounce_seconds=2.0)
    put_rule(settings, stack, "burst")
    evaluator = Evaluator(settings, stack.clients)
    driven(settings)
    wait_for_run(stack, evaluator, "burst", "connect")
    before = notify(orders, 200)
    wait_for_run(stack, evaluator, "burst", "notify", after=before)
    # Anything a second window could have sent has been sent by the time a later NOTIFY's
    # run is recorded (runs leave in window order).
    marker = notify(orders)
    later = wait_for_run(stack, evaluator, "burst", "notify", after=marker)
    burst = [e for e in runs_of(stack, "burst", "notify", before) if e not in later]
    assert len(burst) == 1, burst


def test_two_listener_processes_hold_one_connection_and_one_takes_over(
    stack: Stack, orders: Database, settings_for: Any, tmp_path: Path
) -> None:
    settings = settings_for(orders)
    put_rule(settings, stack, "leased")
    evaluator = Evaluator(settings, stack.clients)
    env = {
        **stack.env(),
        "HERALD_DATASOURCES": json.dumps({orders.name: orders.url}),
        "HERALD_LISTEN_LEASE_SECONDS": "3",
        "HERALD_LISTEN_RULES_REFRESH_SECONDS": "0.5",
        "HERALD_LISTEN_RECONNECT_MAX_SECONDS": "1",
    }
    processes = [
        start_python(["-m", "alerting.listener"], env, tmp_path / f"listener-{i}.log")
        for i in range(2)
    ]
    leases = ListenLeases(stack.clients.dynamodb, stack.clients.names.table, "test")

    def holding() -> subprocess.Popen[bytes] | None:
        owner = leases.holder("warehouse") or ""
        return next((p for p in processes if owner.endswith(f"-{p.pid}")), None)

    try:
        assert wait_until(
            lambda: holding() is not None and len(listening_backends(orders)) == 1,
            timeout=PATIENCE,
        ), [(tmp_path / f"listener-{i}.log").read_text()[-2000:] for i in range(2)]
        holder = holding()
        assert holder is not None
        wait_for_run(stack, evaluator, "leased", "connect")
        assert len(listening_backends(orders)) == 1  # the other waits for the lease
        died = iso(utcnow())
        holder.kill()  # kill -9: its lease lapses, the other takes the data source over
        holder.wait()
        assert wait_until(lambda: holding() not in (None, holder), timeout=PATIENCE)
        wait_for_run(stack, evaluator, "leased", "connect", after=died)  # the taking over's
        assert wait_until(lambda: len(listening_backends(orders)) == 1, timeout=PATIENCE)
        before = notify(orders)
        wait_for_run(stack, evaluator, "leased", "notify", after=before)
    finally:
        for process in processes:
            stop(process)


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


def test_a_restarted_database_is_listened_to_again(
    stack: Stack, own_server: PostgresServer, settings_for: Any, driven: Any
) -> None:
    db = Database("warehouse", own_server.url)
    db.execute("CREATE TABLE orders (id int PRIMARY KEY)")
    settings = settings_for(db)
    put_rule(settings, stack, "restart")
    evaluator = Evaluator(settings, stack.clients)
    listener = driven(settings).listener
    wait_for_run(stack, evaluator, "restart", "connect")
    restarted = iso(utcnow())
    own_server.stop()
    own_server.start()
    assert wait_until(lambda: listener.active["warehouse"].connections >= 2, timeout=PATIENCE)
    # Reconnected: it runs the rule once for what changed while nobody listened.
    wait_for_run(stack, evaluator, "restart", "connect", after=restarted)
    orders_added = "INSERT INTO orders SELECT generate_series(1, 1001)"
    db.execute(orders_added)
    before = notify(db)
    runs = wait_for_run(stack, evaluator, "restart", "notify", after=before)
    assert runs[0]["outcome"] == "firing"


@pytest.mark.parametrize("initial", [False, True])
@pytest.mark.parametrize(
    ("condition", "reported"),
    [({"kind": "new_rows", "key_column": "id"}, "2 new row(s)"), ({"kind": "changed"}, "changed")],
)
def test_notify_initial_reports_the_first_result(
    stack: Stack,
    orders: Database,
    settings_for: Any,
    initial: bool,
    condition: dict[str, Any],
    reported: str,
) -> None:
    orders.execute("INSERT INTO orders VALUES (1), (2)")
    settings = settings_for(orders)
    put_rule(
        settings,
        stack,
        "initial",
        source={"kind": "sql", "datasource": "warehouse", "query": "SELECT id FROM orders"},
        condition=condition,
        notify_initial=initial,
        listen=None,
    )
    evaluator = Evaluator(settings, stack.clients)
    run = iso(utcnow())
    outcome = evaluator.evaluate_run("initial", run, {"rule_id": "initial", "run": run})
    [recorded] = evaluations(stack, "initial")
    if initial:
        assert outcome == "firing"
        assert recorded["events_total"] == 1
        assert [e["action"] for e in recorded["events"]] == ["trigger"]  # nothing resolved
        assert reported in recorded["summary"]
    else:
        assert outcome == "ok"
        assert recorded["events_total"] == 0
        assert recorded["summary"].startswith("baseline")


def test_a_rule_moved_to_another_channel_is_heard_there(
    stack: Stack, orders: Database, settings_for: Any
) -> None:
    # The process's own loop: leases renewed every 10 s, rules reread every 0.2 s.
    settings = settings_for(orders, listen_lease_seconds=30.0)
    put_rule(settings, stack, "moved", listen="first_channel")
    evaluator = Evaluator(settings, stack.clients)
    listener = Listener(settings, stack.clients, owner="moving")
    stop = threading.Event()
    loop = threading.Thread(target=listener.run, args=(stop,), daemon=True)
    loop.start()
    try:
        wait_for_run(stack, evaluator, "moved", "connect")
        put_rule(settings, stack, "moved")  # now on CHANNEL
        # LISTEN on the new channel, then UNLISTEN on the old: the last statement it sent.
        moved = 'UNLISTEN "first_channel"'
        assert wait_until(lambda: moved in listening_backends(orders), timeout=PATIENCE)
        before = notify(orders)
        wait_for_run(stack, evaluator, "moved", "notify", after=before)
    finally:
        stop.set()
        loop.join(10)
