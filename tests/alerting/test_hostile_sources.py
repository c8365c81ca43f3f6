"""A rule's query against a real PostgreSQL server: it cannot write, cannot lift its own
time limit, is computed only as far as the row cap, and a silent or busy data source
holds up nothing else."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from alerting.rules import SqlSource
from alerting.sources import DataSources, SourceResult
from core.platform.settings import Settings
from tests.alerting.conftest import Database

BOUND_SECONDS = 60  # every run below answers within seconds; a wait this long is a hang


@pytest.fixture
def warehouse(pg_database: Database) -> Iterator[Database]:
    """A fresh PostgreSQL database with a table of orders."""
    db = pg_database
    db.execute(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER)",
        "INSERT INTO orders VALUES (1, 10), (2, 20), (3, 30)",
    )
    yield db


def sources(urls: dict[str, str], **settings: Any) -> DataSources:
    conf = Settings(
        _env_file=None,  # type: ignore[call-arg]
        datasources=json.dumps(urls),
        **settings,
    )
    return DataSources(conf)


def run(datasources: DataSources, name: str, query: str) -> SourceResult:
    return in_thread(lambda: datasources.run(SqlSource(kind="sql", datasource=name, query=query)))


def in_thread(call: Callable[[], SourceResult]) -> SourceResult:
    """The call's answer, failing (not hanging) the test when none comes in BOUND_SECONDS."""
    answers: list[SourceResult] = []
    worker = threading.Thread(target=lambda: answers.append(call()), daemon=True)
    worker.start()
    worker.join(BOUND_SECONDS)
    assert answers, "the data source never answered"
    return answers[0]


def count_orders(db: Database) -> int:
    engine = create_engine(db.url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM orders")).scalar_one())
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "query",
    [
        "COMMIT; DELETE FROM orders; SELECT 1",
        "COMMIT; SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE; DELETE FROM orders",
        "WITH gone AS (DELETE FROM orders RETURNING id) SELECT count(*) FROM gone",
        "DELETE FROM orders RETURNING id",
    ],
)
def test_a_query_cannot_write(warehouse: Database, query: str) -> None:
    datasources = sources({warehouse.name: warehouse.url})
    result = run(datasources, warehouse.name, query)
    assert result.error is not None
    assert count_orders(warehouse) == 3


def test_a_session_setting_changed_by_one_run_does_not_reach_the_next(
    warehouse: Database,
) -> None:
    datasources = sources({warehouse.name: warehouse.url}, sql_datasource_concurrency=1)
    lift = "SELECT set_config('default_transaction_read_only', 'off', false) AS was"
    assert run(datasources, warehouse.name, lift).error is None
    # The same pooled connection (one per data source here) runs the next query.
    assert run(datasources, warehouse.name, "DELETE FROM orders RETURNING id").error is not None
    assert count_orders(warehouse) == 3


@pytest.mark.parametrize(
    "query",
    [
        "COMMIT; SELECT pg_sleep(3600)",
        "SELECT set_config('statement_timeout', '0', false) AS t, pg_sleep(3600) AS s "
        "FROM generate_series(1, 2)",
    ],
)
def test_a_query_cannot_lift_its_time_limit(warehouse: Database, query: str) -> None:
    datasources = sources({warehouse.name: warehouse.url}, sql_statement_timeout_seconds=1)
    result = run(datasources, warehouse.name, query)
    assert result.error is not None
    assert run(datasources, warehouse.name, "SELECT 1 AS one").rows == [{"one": 1}]


def test_rows_past_the_cap_are_never_computed(warehouse: Database) -> None:
    # Row 1000 divides by zero: pulling the whole result would fail the query.
    query = "SELECT g, 1000 / (1000 - g) AS x FROM generate_series(1, 5000) AS g"
    result = run(sources({warehouse.name: warehouse.url}, sql_row_cap=5), warehouse.name, query)
    assert result.error is None, result.error
    assert result.truncated and [r["g"] for r in result.rows] == [1, 2, 3, 4, 5]


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port whose listener accepts connections and never says a word (a black hole)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield listener.getsockname()[1]
    listener.close()


def test_a_silent_server_is_an_error_not_a_hang(silent_server: int) -> None:
    url = f"postgresql+psycopg://herald@127.0.0.1:{silent_server}/postgres"
    datasources = sources({"blackhole": url}, sql_connect_timeout_seconds=2)
    result = run(datasources, "blackhole", "SELECT 1")
    assert result.error is not None


def waiting_on_lock(db: Database) -> int:
    engine = create_engine(db.url)
    try:
        with engine.connect() as conn:
            found = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND wait_event = 'advisory'"
                )
            )
            return int(found.scalar_one())
    finally:
        engine.dispose()


def test_one_data_source_takes_at_most_its_share_of_queries(warehouse: Database) -> None:
    datasources = sources({warehouse.name: warehouse.url}, sql_datasource_concurrency=2)
    holder = create_engine(warehouse.url)
    blocked = "SELECT pg_advisory_xact_lock(4242) AS locked"
    results: list[SourceResult] = []
    try:
        with holder.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(4242)"))
            runs = [
                threading.Thread(
                    target=lambda: results.append(run(datasources, warehouse.name, blocked)),
                    daemon=True,
                )
                for _ in range(4)
            ]
            for thread in runs:
                thread.start()
            deadline = time.monotonic() + BOUND_SECONDS
            while waiting_on_lock(warehouse) < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(1.0)  # room for a third query to show up, were it let through
            assert waiting_on_lock(warehouse) == 2
            conn.execute(text("SELECT pg_advisory_unlock(4242)"))
            for thread in runs:
                thread.join(BOUND_SECONDS)
    finally:
        holder.dispose()
    assert len(results) == 4 and all(r.error is None for r in results)
