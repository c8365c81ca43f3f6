"""Running a rule's source: a read-only SQL query or an HTTP check, always bounded.

A source answers rows (a list of column → JSON value) or an error, and how long it took.
SQL runs in a read-only transaction with a statement timeout and at most `row_cap` rows
(one more row is fetched to tell that the cap was hit), then rolls back. HTTP checks give
one row: `status`, `latency_ms` and `value` (the JSON value at `json_path`).

Connection URLs are credentials: errors are reported without them (`safe_error`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from alerting.rules import HttpSource, SqlSource
from core.platform.masking import mask_text
from core.platform.settings import Settings

log = logging.getLogger("herald.alerting.sources")

SECRET_CACHE_SECONDS = 300.0
ERROR_MAX = 500


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
        self._row_cap = settings.sql_row_cap
        self._engines: dict[str, tuple[float, Engine, str]] = {}
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
                engine = create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=2)
            password = url.password or ""
            self._engines[name] = (time.monotonic() + SECRET_CACHE_SECONDS, engine, password)
            return engine, password

    def run(self, source: SqlSource) -> SourceResult:
        started = time.monotonic()
        password = ""
        try:
            engine, password = self.engine(source.datasource)
            rows, truncated = run_read_only(engine, source.query, self._timeout, self._row_cap)
            return SourceResult(rows, time.monotonic() - started, None, truncated)
        except (SQLAlchemyError, ArgumentError, UnknownDataSource, OSError) as exc:
            error = safe_error(exc, (password,))
        except Exception as exc:  # a driver's own error type: still the rule's failure
            error = safe_error(exc, (password,))
        log.info("data source %s failed: %s", source.datasource, error)
        return SourceResult([], time.monotonic() - started, error)


def run_read_only(
    engine: Engine, query: str, timeout: float, row_cap: int
) -> tuple[list[dict[str, Any]], bool]:
    dialect = engine.dialect.name
    with engine.connect() as conn:
        cancel: threading.Timer | None = None
        if dialect == "postgresql":
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(timeout * 1000)}")
        elif dialect in ("mysql", "mariadb"):
            conn.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")
            conn.exec_driver_sql(f"SET SESSION MAX_EXECUTION_TIME = {int(timeout * 1000)}")
        elif dialect == "sqlite":
            conn.exec_driver_sql("PRAGMA query_only = ON")
            raw = conn.connection.dbapi_connection
            cancel = threading.Timer(timeout, raw.interrupt)  # type: ignore[union-attr]
            cancel.start()
        try:
            result = conn.execute(text(query))
            columns = list(result.keys())
            fetched = result.fetchmany(row_cap + 1)
        finally:
            if cancel is not None:
                cancel.cancel()
            if dialect == "sqlite":
                conn.exec_driver_sql("PRAGMA query_only = OFF")
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
