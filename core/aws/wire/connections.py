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

import select
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import urlsplit

from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
    SSLError,
)

from core.aws.wire import http1

# A pooled connection idle longer than this is checked for a close from the other side
# before it is used (a zero-timeout poll; cheaper than sending into a dead socket).
IDLE_CHECK_SECONDS = 1.0


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]  # lower-case names
    content: bytes


class _Conn:
    __slots__ = ("last_used", "reader", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader: BinaryIO = sock.makefile("rb")
        self.last_used = 0.0

    def close(self) -> None:
        try:
            self.reader.close()
        finally:
            self.sock.close()


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
        default = 443 if self.https else 80
        self._port = parts.port or default
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

    def request(self, body: bytes, headers: Mapping[str, str]) -> Reply:
        """POST `body` to the endpoint's path; the answer, whatever its status."""
        conn, reused = self._take()
        try:
            return self._exchange(conn, body, headers)
        except _Stale:
            if not reused:
                raise ConnectionClosedError(endpoint_url=self.url) from None
        try:
            return self._exchange(self._new(), body, headers)
        except _Stale:
            raise ConnectionClosedError(endpoint_url=self.url) from None

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    # --- internals ------------------------------------------------------------------------

    def _take(self) -> tuple[_Conn, bool]:
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return self._new(), False
            if time.monotonic() - conn.last_used < IDLE_CHECK_SECONDS or _alive(conn.sock):
                return conn, True
            conn.close()

    def _give_back(self, conn: _Conn) -> None:
        conn.last_used = time.monotonic()
        with self._lock:
            if len(self._idle) < self._size:
                self._idle.append(conn)
                return
        conn.close()

    def _new(self) -> _Conn:
        try:
            sock = socket.create_connection(
                (self._hostname, self._port), timeout=self._connect_timeout
            )
        except TimeoutError as exc:
            raise ConnectTimeoutError(endpoint_url=self.url) from exc
        except OSError as exc:
            raise EndpointConnectionError(endpoint_url=self.url) from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._ssl is not None:
                sock = self._ssl.wrap_socket(sock, server_hostname=self._hostname)
        except TimeoutError as exc:
            sock.close()
            raise ConnectTimeoutError(endpoint_url=self.url) from exc
        except ssl.SSLError as exc:
            sock.close()
            raise SSLError(endpoint_url=self.url, error=exc) from exc
        except OSError as exc:
            sock.close()
            raise EndpointConnectionError(endpoint_url=self.url) from exc
        sock.settimeout(self._read_timeout)
        return _Conn(sock)

    def _exchange(self, conn: _Conn, body: bytes, headers: Mapping[str, str]) -> Reply:
        try:
            try:
                http1.send(conn.sock, self.path, headers, body)
            except (ConnectionResetError, BrokenPipeError):
                raise http1.NoAnswer() from None
            answer = http1.receive(conn.reader)
        except TimeoutError as exc:
            conn.close()
            raise ReadTimeoutError(endpoint_url=self.url) from exc
        except http1.NoAnswer:
            conn.close()
            raise _Stale() from None
        except (OSError, http1.ProtocolError) as exc:
            conn.close()
            raise ConnectionClosedError(endpoint_url=self.url) from exc
        if answer.keep_alive:
            self._give_back(conn)
        else:
            conn.close()
        return Reply(answer.status, answer.headers, answer.content)


class _Stale(Exception):
    """The connection failed before any answer: it was closed under us."""


def _alive(sock: socket.socket) -> bool:
    """An idle kept-alive socket has nothing to read; readable means closed (or junk)."""
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
