"""Serving the emulator with connections kept alive, as AWS keeps them.

botocore pools its connections and AWS keeps them open, so a process that makes a thousand
calls opens a handful of connections. Werkzeug's development server, which moto's server
mode runs on, answers every request with `Connection: close`: against it each AWS call
opened a new TCP connection (and the server started a new thread for it), work that
Herald's processes never do against AWS, counted in every CPU figure a benchmark takes and
paid on every call of every test.

Werkzeug closes because, after each answer, it waits up to 10 ms for whatever else the
client sends and throws it away (the unread part of a body), which on a kept connection
would swallow the next request, or hold every answer 10 ms when none comes. Here that
drain is given a stream with nothing in it and a socket that is always readable, so it
ends at once; the body is read through a stream limited to its `Content-Length`, and what
the application left of it is drained after the answer; the connection is then kept. A
request without a length (chunked), or one that asked to close, is answered and closed as
werkzeug does.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple
from werkzeug.wsgi import LimitedStream


class _Nothing:
    """What werkzeug's after-answer drain reads on a kept connection: nothing, so the next
    request's bytes stay for the next request."""

    def read(self, size: int = -1) -> bytes:
        return b""


class KeepAliveHandler(MotoRequestHandler):
    """moto's request handler, keeping the connection after an answer whose request body
    was read to its end."""

    # An answer is written in pieces (status and headers, then the body): on a kept
    # connection Nagle's algorithm would hold the last piece for the client's delayed ACK,
    # tens of milliseconds a request (a closed connection flushed it at once).
    disable_nagle_algorithm = True
    _body: LimitedStream | None = None
    _stream: Any = None
    _ready: tuple[socket.socket, socket.socket] | None = None

    def setup(self) -> None:
        super().setup()
        self._ready = socket.socketpair()  # [0] always has a byte to read: see run_wsgi
        self._ready[1].sendall(b"x")

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            if self._ready is not None:
                for end in self._ready:
                    end.close()

    def _keepable(self) -> bool:
        if self.close_connection:
            return False
        length = self.headers.get("Content-Length") or "0"
        chunked = (self.headers.get("Transfer-Encoding") or "").strip().lower() == "chunked"
        return not chunked and length.isdigit()

    def make_environ(self) -> dict[str, Any]:
        environ = super().make_environ()
        if self._stream is not None:  # kept: the body, bounded, from the socket's stream
            length = int(self.headers.get("Content-Length") or "0")
            self._body = LimitedStream(self._stream, length)
            environ["wsgi.input"] = self._body
        return environ

    def send_header(self, keyword: str, value: str) -> None:
        # Werkzeug closes after every answer; not when this one is kept.
        if keyword.lower() == "connection" and value.lower() == "close" and self._stream:
            return
        super().send_header(keyword, value)

    def run_wsgi(self) -> None:
        if not self._keepable():
            self._stream = self._body = None
            super().run_wsgi()
            self.close_connection = True
            return
        assert self._ready is not None
        # Werkzeug's drain after the answer selects on `connection` and reads `rfile`:
        # given these, it finds at once that there is nothing.
        connection, self.connection = self.connection, self._ready[0]
        self._stream, self.rfile = self.rfile, _Nothing()  # type: ignore[assignment]
        try:
            super().run_wsgi()
            if self._body is not None:  # what the application left unread
                self._body.exhaust()
        finally:
            self.rfile, self._stream, self._body = self._stream, None, None
            self.connection = connection


def serve(
    host: str,
    port: int,
    *,
    keep_alive: bool = True,
    wrap: Callable[[Any], Any] | None = None,
) -> None:
    """moto's server mode, as `moto.server.main` runs it, with `KeepAliveHandler` (moto's
    own handler without `keep_alive`); `wrap` puts middleware in front of moto's app."""
    os.environ.setdefault("MOTO_PORT", str(port))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app: Any = DomainDispatcherApplication(create_backend_app)
    app.debug = True
    handler = KeepAliveHandler if keep_alive else MotoRequestHandler
    run_simple(host, port, wrap(app) if wrap else app, threaded=True, request_handler=handler)
