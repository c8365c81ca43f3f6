"""The listener: real-time rules, run within seconds of a PostgreSQL NOTIFY.

    python -m alerting.listener

A rule with `"listen": "<channel>"` (its source a PostgreSQL data source) runs when its
data source NOTIFYs on the channel, as well as on its schedule (the safety net: a NOTIFY
lost with a connection still gets the rule evaluated on time). The listener holds one
connection per data source that has listening rules, LISTENs on their channels and turns
each NOTIFY into a run request: debounced into windows and sent to the rules queue when the
window ends (`alerting/listen_runs.py`), then evaluated by the evaluators like a scheduled
run, so every guarantee of a run holds (evaluated once, committed before published, never
rolling the state back).

One connection per data source in the whole deployment: a data source's connection is
held by the process holding its lease (`alerting/listen_lease.py`), renewed
every third of HERALD_LISTEN_LEASE_SECONDS; several listeners may run, and another takes a
data source over once its holder's lease lapses. A lost connection (the database
restarted, the network dropped) is reconnected with a back-off doubling from half a second
up to HERALD_LISTEN_RECONNECT_MAX_SECONDS. PostgreSQL keeps no NOTIFY for a listener that
is not connected, so every (re)connection asks for one run of each of the data source's
listening rules: what changed while nobody listened is evaluated at once.

The listening rules are reread every HERALD_LISTEN_RULES_REFRESH_SECONDS (one Query of
their index, `alerting/listen_index.py`, however many rules there are): a new or changed
listening rule is listened for within that time.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg
from botocore.exceptions import BotoCoreError, ClientError
from psycopg import sql

from alerting.listen_connection import connect
from alerting.listen_index import listening
from alerting.listen_lease import ListenLeases
from alerting.listen_runs import ListenRule, RunRequests
from alerting.sources import DataSources, safe_error
from core.aws import dynamo
from core.aws import errors as aws_errors
from core.aws.clients import AwsClients
from core.catalogue.event_types import Lane
from core.catalogue.models import utcnow
from core.platform.logs import configure_logging
from core.platform.settings import Settings

log = logging.getLogger("herald.alerting.listener")

TICK_SECONDS = 0.1  # how often due runs are flushed to the queue
POLL_SECONDS = 0.25  # the longest a connection thread waits before it looks at its rules
NOTIFY_BATCH = 100
RECONNECT_MIN_SECONDS = 0.5
FOREVER = datetime.max.replace(tzinfo=UTC)


class SourceListener:
    """One data source's connection, in a thread: LISTEN on the channels of its rules and
    ask for runs as NOTIFYs arrive, reconnecting with a back-off until stopped."""

    def __init__(
        self,
        datasource: str,
        opener: Callable[[], psycopg.Connection[Any]],
        runs: RunRequests,
        reconnect_max: float,
    ) -> None:
        self.datasource = datasource
        self._open = opener
        self._runs = runs
        self._reconnect_max = reconnect_max
        self._rules: dict[str, list[ListenRule]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.connections = 0  # connections made (a test reads it)
        self._connected_at: float | None = None
        self._thread = threading.Thread(target=self._run, name=f"listen-{datasource}", daemon=True)

    def set_rules(self, rules: list[ListenRule]) -> None:
        by_channel: dict[str, list[ListenRule]] = {}
        for rule in rules:
            by_channel.setdefault(rule.channel, []).append(rule)
        with self._lock:
            self._rules = by_channel

    def _channels(self) -> dict[str, list[ListenRule]]:
        with self._lock:
            return self._rules

    def start(self) -> None:
        self._thread.start()

    def stop(self, wait: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(wait)

    def _run(self) -> None:
        delay = RECONNECT_MIN_SECONDS
        error: Exception
        while not self._stop.is_set():
            self._connected_at = None
            try:
                self._listen()
                return  # stopped
            except (psycopg.Error, OSError) as exc:
                error, unexpected = exc, False
            except Exception as exc:  # a secret that cannot be read, a bug: still try again
                error, unexpected = exc, True
            held = self._connected_at is not None and (
                time.monotonic() - self._connected_at >= self._reconnect_max
            )
            if held:  # a connection that held starts the back-off over; one that keeps
                delay = RECONNECT_MIN_SECONDS  # dropping at once backs off
            log.warning(
                "listening on %s lost: %s; again in %.1fs",
                self.datasource,
                safe_error(error),
                delay,
                exc_info=error if unexpected else None,
            )
            self._stop.wait(delay)
            delay = min(delay * 2, self._reconnect_max)

    def _listen(self) -> None:
        with self._open() as conn:
            self.connections += 1
            self._connected_at = time.monotonic()
            listening: set[str] = set()
            first = True
            while not self._stop.is_set():
                channels = self._channels()
                for channel in sorted(set(channels) - listening):
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                    listening.add(channel)
                for channel in sorted(listening - set(channels)):
                    conn.execute(sql.SQL("UNLISTEN {}").format(sql.Identifier(channel)))
                    listening.discard(channel)
                if first:  # NOTIFYs sent while nobody listened are gone: run once now
                    log.info("listening on %s: %s", self.datasource, ", ".join(sorted(listening)))
                    every = [rule for rules in channels.values() for rule in rules]
                    self._runs.ask(every, utcnow(), "connect")
                    first = False
                for notify in conn.notifies(timeout=POLL_SECONDS, stop_after=NOTIFY_BATCH):
                    heard = channels.get(notify.channel)
                    if heard:
                        self._runs.ask(heard, utcnow(), "notify")


class Listener:
    """The process: which data sources have listening rules, their leases, their
    connections, and the runs they ask for."""

    def __init__(
        self,
        settings: Settings,
        clients: AwsClients,
        *,
        owner: str | None = None,
        datasources: DataSources | None = None,
    ) -> None:
        self.settings = settings
        self.owner = owner or f"{socket.gethostname()}-{os.getpid()}"
        table = clients.names.table
        self._dynamodb, self._table = clients.dynamodb, table
        self.leases = ListenLeases(clients.dynamodb, table, self.owner)
        self.datasources = datasources or DataSources(settings, clients.client("secretsmanager"))
        self.runs = RunRequests(clients, settings.listen_debounce_seconds)
        self.wanted: dict[str, list[ListenRule]] = {}
        self.active: dict[str, SourceListener] = {}
        self._held_until: dict[str, float] = {}

    def load_rules(self) -> dict[str, list[ListenRule]]:
        """The listening rules, by data source (the index of them, one partition)."""
        known = set(self.datasources.names())
        found: dict[str, list[ListenRule]] = {}
        if not known:  # no data source configured: nothing to listen to, no AWS call
            return found
        for entry in listening(self._dynamodb, self._table):
            datasource = str(entry["datasource"])
            if datasource not in known:
                continue  # taken out of HERALD_DATASOURCES since: its schedule reports it
            lane: Lane = "critical" if entry.get("lane") == "critical" else "normal"
            rule = ListenRule(str(entry[dynamo.SK]), str(entry["channel"]), lane)
            found.setdefault(datasource, []).append(rule)
        return found

    def keep_leases(self) -> None:
        """Claim or renew each wanted data source's lease; start what was won, stop what
        was lost, expired unrenewed, or is no longer wanted."""
        lease = self.settings.listen_lease_seconds
        for datasource, rules in self.wanted.items():
            try:
                held = self.leases.claim(datasource, utcnow(), lease)
                if held:
                    self._held_until[datasource] = time.monotonic() + lease
            except (ClientError, BotoCoreError) as exc:
                log.warning("lease of %s not renewed: %s", datasource, exc)
                held = time.monotonic() < self._held_until.get(datasource, 0.0)
            current = self.active.get(datasource)
            if held and current is None:
                current = self.active[datasource] = self._source_listener(datasource)
                current.set_rules(rules)
                current.start()
                log.info("holding the lease of %s", datasource)
            elif held and current is not None:
                current.set_rules(rules)
            elif current is not None:
                log.warning("lease of %s lost: its connection is closed", datasource)
                self._drop(datasource, release=False)
        for datasource in [d for d in self.active if d not in self.wanted]:
            self._drop(datasource, release=True)

    def _source_listener(self, datasource: str) -> SourceListener:
        settings = self.settings

        def opener() -> psycopg.Connection[Any]:
            return connect(
                self.datasources,
                datasource,
                settings.sql_statement_timeout_seconds,
                settings.sql_connect_timeout_seconds,
            )

        return SourceListener(datasource, opener, self.runs, settings.listen_reconnect_max_seconds)

    def _drop(self, datasource: str, *, release: bool) -> None:
        listener = self.active.pop(datasource, None)
        if listener is not None:
            listener.stop()
        self._held_until.pop(datasource, None)
        if release:
            try:
                self.leases.release(datasource)
            except (ClientError, BotoCoreError) as exc:  # it lapses instead
                log.warning("lease of %s not released: %s", datasource, exc)

    def step(self, refresh: bool, renew: bool) -> bool:
        """One turn of the loop: reread the rules, keep the leases, send due runs; whether
        the leases were kept (also when the data sources wanted changed)."""
        if refresh:
            try:
                wanted = self.load_rules()
            except ClientError as exc:
                if aws_errors.error_code(exc) != "ResourceNotFoundException":
                    raise
                log.info("waiting for the table")
                wanted = {}
            renew = renew or set(wanted) != set(self.wanted)
            self.wanted = wanted
            for datasource, source in self.active.items():  # new channels at once
                source.set_rules(wanted.get(datasource, []))
        if renew:
            self.keep_leases()
        self.runs.flush()
        return renew

    def run(self, stop: threading.Event) -> None:
        settings = self.settings
        next_refresh = next_renew = 0.0
        try:
            while not stop.is_set():
                now = time.monotonic()
                refresh, renew = now >= next_refresh, now >= next_renew
                try:
                    renew = self.step(refresh, renew)
                except (ClientError, BotoCoreError) as exc:  # AWS unreachable: next turn
                    log.warning("listener turn failed: %s", exc)
                except Exception:
                    log.exception("listener turn failed")
                if refresh:
                    next_refresh = now + settings.listen_rules_refresh_seconds
                if renew:
                    next_renew = now + settings.listen_lease_seconds / 3
                stop.wait(TICK_SECONDS)
        finally:
            self.close()

    def close(self) -> None:
        """Stop listening, send every run asked for (its window need not have ended: the
        next holder of the lease would not know of it), give the leases up."""
        for datasource in list(self.active):
            self._drop(datasource, release=True)
        try:
            self.runs.flush(FOREVER)
        except Exception:
            log.exception("runs not sent at stop")


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(
        description="Run alert rules on PostgreSQL NOTIFY until SIGTERM."
    ).parse_args(argv)
    configure_logging("listener")
    settings = Settings()
    clients = AwsClients(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    log.info("listening for real-time rules (debounce %.2fs)", settings.listen_debounce_seconds)
    Listener(settings, clients).run(stop)
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
