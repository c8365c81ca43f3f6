"""Running a rule's source: a read-only SQL query or an HTTP check, always bounded.

A source answers rows (a list of column → JSON value) or an error, and how long it took.
HTTP checks give one row: `status`, `latency_ms` and `value` (the JSON value at
`json_path`).

SQL is bounded by what a query cannot undo:

- **Read-only and timed out per connection.** PostgreSQL connections are opened with
  `-c default_transaction_read_only=on -c statement_timeout=<ms>`: a `COMMIT` inside the
  query would end only its own transaction, and the next one is read-only and timed out
  too. MySQL sessions start read-only with `MAX_EXECUTION_TIME`; SQLite runs with
  `PRAGMA query_only` and an interrupt.
- **One statement.** The query runs through a server-side cursor: on PostgreSQL a
  `DECLARE … CURSOR FOR <query>` sent with the extended protocol, which takes exactly one
  statement and only a query (`SELECT`, `WITH`, `VALUES`), never data-modifying `WITH`.
- **Rows fetched, not pulled.** The cursor is read for `row_cap + 1` rows (the extra one
  tells the cap was hit); the server computes no more than that.
- **Time.** A connect timeout (and TCP keepalives on PostgreSQL), the statement timeout, and
  a watchdog that cancels the query from the client a moment after it (a query that
  changed its session's timeout, a server that stopped answering).
- **Concurrency.** At most `sql_datasource_concurrency` queries of this process run against
  one data source at once (its connection pool is that size): a slow warehouse holds that
  many threads and connections, never all of them.

Connection URLs are credentials: errors are reported without them (`safe_error`).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from alerting.rules import HttpSource, SqlSource
from core.platform.masking import mask_text
from core.platform.settings import Settings

log = logging.getLogger("herald.alerting.sources")

SECRET_CACHE_SECONDS = 300.0
ERROR_MAX = 500
WATCHDOG_GRACE_SECONDS = 1.0  # the server's own statement timeout normally answers first


@dataclass
class SourceResult:
    rows: list[dict[str, Any]] = field(default_factory=list)
    duration_s: float = 0.0
    error: str | None = None
    truncated: bool = False


class UnknownDataSource(ValueError):
    pass


def _parse(raw: str | None) -> dict[str, str]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ValueError("HERALD_DATASOURCES is not JSON {name: url}") from exc
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError("HERALD_DATASOURCES must be a JSON object of {name: url}")
    return value


def safe_error(exc: BaseException, secrets: tuple[str, ...] = ()) -> str:
    """One line about the failure, without the connection URL's password or personal data."""
    orig = getattr(exc, "orig", None)
    message = str(orig if orig is not None else exc).strip().splitlines()
    first = message[0] if message else type(exc).__name__
    for secret in secrets:
        if secret:
            first = first.replace(secret, "***")
    return mask_text(f"{type(orig or exc).__name__}: {first}")[:ERROR_MAX]


class DataSources:
    """Named SQL data sources: URLs from settings or AWS Secrets Manager
    (`secretsmanager:<secret id>`, whose SecretString is the URL), one engine each."""

    def __init__(self, settings: Settings, secrets_client: Any = None) -> None:
        self._specs = _parse(settings.datasources)
        self._secrets = secrets_client
        self._timeout = settings.sql_statement_timeout_seconds
        self._connect_timeout = settings.sql_connect_timeout_seconds
        self._concurrency = settings.sql_datasource_concurrency
        self._row_cap = settings.sql_row_cap
        self._engines: dict[str, tuple[float, Engine, str]] = {}
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return sorted(self._specs)

    def _url(self, name: str) -> str:
        spec = self._specs.get(name)
        if spec is None:
            raise UnknownDataSource(f"unknown data source {name!r}")
        if spec.startswith("secretsmanager:"):
            if self._secrets is None:
                raise UnknownDataSource(f"data source {name!r} needs Secrets Manager")
            secret = self._secrets.get_secret_value(SecretId=spec.split(":", 1)[1])
            return str(secret["SecretString"]).strip()
        return spec

    def engine(self, name: str) -> tuple[Engine, str]:
        """The engine and its password (to scrub from errors); secrets are reread every
        SECRET_CACHE_SECONDS so a rotated password is picked up."""
        with self._lock:
            cached = self._engines.get(name)
            if cached and cached[0] > time.monotonic():
                return cached[1], cached[2]
            url = make_url(self._url(name))
            if cached and cached[1].url == url:
                engine = cached[1]
            else:
                if cached:
                    cached[1].dispose()
                engine = create_engine(
                    url,
                    pool_pre_ping=True,
                    pool_size=self._concurrency,
                    max_overflow=0,
                    pool_timeout=self._timeout,
                    connect_args=connect_args(url, self._timeout, self._connect_timeout),
                )
            password = url.password or ""
            self._engines[name] = (time.monotonic() + SECRET_CACHE_SECONDS, engine, password)
            return engine, password

    def _slot(self, name: str) -> threading.BoundedSemaphore:
        with self._lock:
            slot = self._slots.get(name)
            if slot is None:
                slot = self._slots[name] = threading.BoundedSemaphore(self._concurrency)
            return slot

    def run(self, source: SqlSource) -> SourceResult:
        started = time.monotonic()
        password = ""
        slot = self._slot(source.datasource)
        if not slot.acquire(timeout=self._timeout):
            error = (
                f"data source {source.datasource!r} busy: {self._concurrency} queries "
                f"still running after {self._timeout:g}s"
            )
            log.info("data source %s busy", source.datasource)
            return SourceResult([], time.monotonic() - started, error)
        try:
            engine, password = self.engine(source.datasource)
            rows, truncated = run_read_only(engine, source.query, self._timeout, self._row_cap)
            return SourceResult(rows, time.monotonic() - started, None, truncated)
        except (SQLAlchemyError, ArgumentError, UnknownDataSource, OSError) as exc:
            error = safe_error(exc, (password,))
        except Exception as exc:  # a driver's own error type: still the rule's failure
            error = safe_error(exc, (password,))
        finally:
            slot.release()
        log.info("data source %s failed: %s", source.datasource, error)
        return SourceResult([], time.monotonic() - started, error)


def connect_args(url: URL, timeout: float, connect_timeout: float) -> dict[str, Any]:
    """Limits set when a connection opens, which no statement of a rule's query can lift
    for the statements after it."""
    millis = max(1, int(timeout * 1000))
    backend = url.get_backend_name()
    if backend == "postgresql":
        ours = f"-c default_transaction_read_only=on -c statement_timeout={millis}"
        given = url.query.get("options")
        given_text = " ".join(given) if isinstance(given, tuple) else given or ""
        return {
            "options": f"{given_text} {ours}".strip(),
            "connect_timeout": max(2, math.ceil(connect_timeout)),
            # A server that vanished mid-query is noticed, not waited for until the OS gives up.
            "keepalives": 1,
            "keepalives_idle": max(1, math.ceil(timeout)),
            "keepalives_interval": 5,
            "keepalives_count": 3,
        }
    if backend in ("mysql", "mariadb"):
        return {
            "connect_timeout": max(1, math.ceil(connect_timeout)),
            "read_timeout": math.ceil(timeout + WATCHDOG_GRACE_SECONDS),
            "write_timeout": math.ceil(timeout + WATCHDOG_GRACE_SECONDS),
            "init_command": (
                f"SET SESSION TRANSACTION READ ONLY, SESSION MAX_EXECUTION_TIME = {millis}"
            ),
        }
    return {}


def _canceller(conn: Any, dialect: str) -> Any:
    """What stops the running query from another thread, or None."""
    raw = conn.connection.dbapi_connection
    if dialect == "sqlite":
        return raw.interrupt
    if dialect == "postgresql" and hasattr(raw, "cancel_safe"):
        return lambda: raw.cancel_safe(timeout=WATCHDOG_GRACE_SECONDS * 5)
    return None


def run_read_only(
    engine: Engine, query: str, timeout: float, row_cap: int
) -> tuple[list[dict[str, Any]], bool]:
    dialect = engine.dialect.name
    with engine.connect() as conn:
        if dialect == "postgresql":
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        elif dialect in ("mysql", "mariadb"):
            conn.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")
            conn.exec_driver_sql(f"SET SESSION MAX_EXECUTION_TIME = {int(timeout * 1000)}")
        elif dialect == "sqlite":
            conn.exec_driver_sql("PRAGMA query_only = ON")
        cancel = _canceller(conn, dialect)
        grace = 0.0 if dialect == "sqlite" else WATCHDOG_GRACE_SECONDS
        watchdog = threading.Timer(timeout + grace, cancel) if cancel else None
        if watchdog is not None:
            watchdog.daemon = True
            watchdog.start()
        try:
            # A server-side cursor: one statement, a query only, read row_cap + 1 rows.
            result = conn.execute(
                text(query),
                execution_options={"stream_results": True, "max_row_buffer": row_cap + 1},
            )
            columns = list(result.keys())
            fetched = result.fetchmany(row_cap + 1)
            result.close()
        finally:
            if watchdog is not None:
                watchdog.cancel()
            try:
                if dialect == "sqlite":
                    conn.exec_driver_sql("PRAGMA query_only = OFF")
            finally:
                conn.rollback()
    rows = [{c: jsonable(v) for c, v in zip(columns, row, strict=True)} for row in fetched]
    return rows[:row_cap], len(rows) > row_cap


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def run_http(source: HttpSource, timeout: float) -> SourceResult:
    started = time.monotonic()
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            resp = client.request(source.method, source.url)
        latency = time.monotonic() - started
    except httpx.HTTPError as exc:
        return SourceResult([], time.monotonic() - started, safe_error(exc))
    row: dict[str, Any] = {"status": resp.status_code, "latency_ms": round(latency * 1000, 1)}
    if resp.status_code not in source.expect_status:
        return SourceResult([row], latency, f"HTTP {resp.status_code}")
    if source.json_path:
        try:
            row["value"] = jsonable_tree(_dig(resp.json(), source.json_path))
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            return SourceResult([row], latency, f"json_path {source.json_path}: {exc!r}"[:200])
    return SourceResult([row], latency)


def _dig(value: Any, path: str) -> Any:
    for part in path.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def jsonable_tree(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
