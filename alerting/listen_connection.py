"""The listening connection to a rule's PostgreSQL data source, opened the way the sources
open theirs (`alerting/sources.py`): read-only by default, under the statement timeout,
with the connect timeout and TCP keepalives, so LISTEN gives a rule's channel no more power
over the database than its query has."""

from __future__ import annotations

from typing import Any

import psycopg

from alerting.sources import DataSources, connect_args

APPLICATION_NAME = "herald-listener"


def datasource_backend(datasources: DataSources, name: str) -> str | None:
    """The data source's database kind (`postgresql`, `sqlite`, ...), or None when its URL
    cannot be read (an unknown name, an unreadable secret)."""
    try:
        engine, _ = datasources.engine(name)
    except Exception:  # a secret that cannot be read or a URL that cannot be parsed
        return None
    return str(engine.dialect.name)


def connect(
    datasources: DataSources, name: str, statement_timeout: float, connect_timeout: float
) -> psycopg.Connection[Any]:
    """An autocommit psycopg connection (LISTEN takes effect at once, outside a
    transaction) named `herald-listener` in pg_stat_activity."""
    engine, _ = datasources.engine(name)
    url = engine.url
    if engine.dialect.name != "postgresql":
        raise ValueError(f"data source {name!r} is not PostgreSQL")
    extra: dict[str, Any] = {}
    for key, value in url.query.items():
        if key != "options":  # connect_args merges the URL's options with its own
            extra[key] = value[-1] if isinstance(value, tuple) else value
    extra.setdefault("application_name", APPLICATION_NAME)
    return psycopg.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        password=url.password,
        dbname=url.database,
        autocommit=True,
        **extra,
        **connect_args(url, statement_timeout, connect_timeout),
    )
