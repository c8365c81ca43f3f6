"""Kept-alive HTTP(S) connections to one AWS endpoint, shared by a process's threads.

Failures come out as botocore's exceptions, so callers and the retry conditions see what
they would have seen from botocore: `ConnectTimeoutError` / `EndpointConnectionError`
before anything was sent (nothing applied), `ReadTimeoutError` / `ConnectionClosedError`
after (the request may have been applied: `core.aws.errors.may_have_applied`).

A connection idle for a while may have been closed by the other side (AWS closes idle
ones); it is checked before reuse, and one that fails before a single byte of answer came
back is replaced and the request sent once more on a new connection, as urllib3 does for a
dropped pooled connection. Only a connection that had been idle is given that second try:
on a fresh one the failure is the endpoint's, and it is raised.
"""

from __future__ import annotations

import http.client
import select
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

# A pooled connection idle longer than this is checked for a close from the other side
# before it is used (a zero-timeout poll; cheaper than sending into a dead socket).
IDLE_CHECK_SECONDS = 1.0


@dataclass(frozen=True)
class Reply:
    status: int
    headers: http.client.HTTPMessage
    content: bytes


class _Conn:
    __slots__ = ("http", "last_used")

    def __init__(self, conn: http.client.HTTPConnection) -> None:
        self.http = conn
        self.last_used = 0.0


class ConnectionPool:
    """At most `size` idle connections kept; more threads than that open more, and the
    surplus is closed when handed back (as botocore's pool does without blocking)."""

    def __init__(
        self,
        url: str,
        *,
        size: int,
        connect_timeout: float,
        read_timeout: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) endpoint: {url!r}")
        self.url = url
        self.https = parts.scheme == "https"
        self._hostname = parts.hostname
        self._port = parts.port or (443 if self.https else 80)
        default = 443 if self.https else 80
        # The Host header as sent and signed: the port only when it is not the default.
        self.host = parts.hostname if self._port == default else f"{parts.hostname}:{self._port}"
        self.path = parts.path or "/"
        self._size = size
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._ssl = ssl_context
        if self.https and self._ssl is None:
            self._ssl = ssl.create_default_context(cafile=_ca_bundle())
        self._idle: list[_Conn] = []
        self._lock = threading.Lock()

    def request(self, body: bytes, headers: dict[str, str]) -> Reply:
        """POST `body` to the endpoint's path; the answer, whatever its status."""
        conn, reused = self._take()
        try:
            reply = self._exchange(conn, body, headers)
        except _Stale:
            conn.http.close()
            if not reused:
                raise ConnectionClosedError(endpoint_url=self.url) from None
            conn = self._new()
            try:
                reply = self._exchange(conn, body, headers)
            except _Stale:
                conn.http.close()
                raise ConnectionClosedError(endpoint_url=self.url) from None
        return reply

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.http.close()

    # --- internals ------------------------------------------------------------------------

    def _take(self) -> tuple[_Conn, bool]:
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return self._new(), False
            if time.monotonic() - conn.last_used < IDLE_CHECK_SECONDS or _alive(conn.http):
                return conn, True
            conn.http.close()

    def _give_back(self, conn: _Conn) -> None:
        conn.last_used = time.monotonic()
        with self._lock:
            if len(self._idle) < self._size:
                self._idle.append(conn)
                return
        conn.http.close()

    def _new(self) -> _Conn:
        http_conn: http.client.HTTPConnection
        if self.https:
            http_conn = http.client.HTTPSConnection(
                self._hostname, self._port, timeout=self._connect_timeout, context=self._ssl
            )
        else:
            http_conn = http.client.HTTPConnection(
                self._hostname, self._port, timeout=self._connect_timeout
            )
        try:
            http_conn.connect()
        except TimeoutError as exc:
            http_conn.close()
            raise ConnectTimeoutError(endpoint_url=self.url) from exc
        except OSError as exc:
            http_conn.close()
            raise EndpointConnectionError(endpoint_url=self.url) from exc
        sock = http_conn.sock
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(self._read_timeout)
        return _Conn(http_conn)

    def _exchange(self, conn: _Conn, body: bytes, headers: dict[str, str]) -> Reply:
        http_conn = conn.http
        got_status = False
        try:
            http_conn.request("POST", self.path, body, headers)
            response = http_conn.getresponse()
            got_status = True
            content = response.read()
        except TimeoutError as exc:
            http_conn.close()
            raise ReadTimeoutError(endpoint_url=self.url) from exc
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
            http_conn.close()
            if not got_status:
                raise _Stale() from exc
            raise ConnectionClosedError(endpoint_url=self.url) from exc
        except (OSError, http.client.HTTPException) as exc:
            http_conn.close()
            raise ConnectionClosedError(endpoint_url=self.url) from exc
        if response.will_close:
            http_conn.close()
        else:
            self._give_back(conn)
        return Reply(response.status, response.headers, content)


class _Stale(Exception):
    """The connection failed before any answer: it was closed under us."""


def _alive(conn: http.client.HTTPConnection) -> bool:
    """An idle kept-alive socket has nothing to read; readable means closed (or junk)."""
    sock: Any = conn.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


def _ca_bundle() -> str | None:
    """The CA bundle botocore would use (certifi's, when installed)."""
    try:
        from botocore.httpsession import get_cert_path

        path = get_cert_path(True)
        return path if isinstance(path, str) else None
    except Exception:  # the system's default store
        return None
