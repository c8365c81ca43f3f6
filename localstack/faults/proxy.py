"""The fault-injecting HTTP proxy: a threaded HTTP/1.1 server on loopback that forwards to
the emulator and fails a chosen share of chosen AWS calls on the way."""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import socket
import sys
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from localstack.faults import wire
from localstack.faults.rules import FaultRule, RuleBook, rules_from_json
from localstack.faults.tokens import TransactionTokens
from localstack.faults.wire import AwsCall, Reply

log = logging.getLogger("herald.faults")

CONTROL_PATH = "/_faults"
# Headers that describe one connection, not the message: never passed on.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)
UPSTREAM_TIMEOUT_SECONDS = 120.0
CHUNK = 64 * 1024


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # botocore opens many pooled connections at once

    def __init__(self, address: tuple[str, int], upstream: str, seed: int | None) -> None:
        super().__init__(address, _Handler)
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be an http:// URL, not {upstream!r}")
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port or 80
        self.book = RuleBook(seed)
        self.tokens = TransactionTokens()
        self.stopping = threading.Event()
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End every client connection, so threads waiting on idle keep-alive ones exit."""
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that gave up (a held answer past their timeout) hang up: expected.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _UpstreamError(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    _upstream: http.client.HTTPConnection | None = None

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def finish(self) -> None:
        super().finish()
        if self._upstream is not None:
            self._upstream.close()

    def do_POST(self) -> None:
        self._handle()

    do_GET = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = do_POST

    # -- dispatch

    def _handle(self) -> None:
        body = self._read_body()
        if urlsplit(self.path).path == CONTROL_PATH:
            self._send(self._control(body))
            return
        call = wire.identify(self.command, self.headers, body)
        try:
            if call is None:
                self._stream(body)
            else:
                self._send(self._answer(call))
        except _UpstreamError as exc:
            self.close_connection = True
            self._send(Reply(502, [("Content-Type", "text/plain")], str(exc).encode()))

    def _answer(self, call: AwsCall) -> Reply:
        book = self.server.book
        picked = book.pick(call.service, call.operation)
        if picked is None:
            return self._forward(call)
        rule, rng = picked
        reply: Reply | None
        if rule.kind == "throttle":
            reply = wire.throttled(call, rng)
        elif rule.kind == "unavailable":
            reply = wire.unavailable(call)
        elif rule.kind == "conflict":
            reply = wire.write_conflict()
        elif rule.kind == "transaction_conflict":
            reply = wire.transaction_cancelled(call, rng, "TransactionConflict")
        elif rule.kind == "transaction_throttled":
            reply = wire.transaction_cancelled(call, rng, "ThrottlingError")
        elif rule.kind == "internal_after":
            self._forward(call)
            reply = wire.internal_error(call)
        elif rule.kind == "timeout_after":
            reply = self._forward(call)
            self.server.stopping.wait(rule.hold_seconds)
        else:  # partial_batch
            split = wire.split_batch(call, rng)
            if split is None:
                reply = None
            else:
                upstream = None if split.body is None else self._forward_body(split.body)
                reply = split.merge(upstream)
        if reply is None:  # the fault does not fit this request: the service answers it
            return self._forward(call)
        book.count(rule.kind, call.operation)
        log.info("fault %s on %s %s -> %d", rule.kind, call.service, call.operation, reply.status)
        return reply

    def _control(self, body: bytes) -> Reply:
        book = self.server.book
        if self.command == "PUT":
            try:
                data = json.loads(body or b"null")
                book.set(rules_from_json(data))
            except ValueError as exc:
                return _json(400, {"message": str(exc)})
        elif self.command == "DELETE":
            book.set([])
        elif self.command != "GET":
            return _json(405, {"message": f"{self.command} {CONTROL_PATH}: use GET, PUT or DELETE"})
        return _json(200, {"rules": [r.to_dict() for r in book.rules()], "stats": book.stats()})

    # -- upstream

    def _connection(self) -> http.client.HTTPConnection:
        if self._upstream is None:
            self._upstream = http.client.HTTPConnection(
                self.server.upstream_host,
                self.server.upstream_port,
                timeout=UPSTREAM_TIMEOUT_SECONDS,
            )
        return self._upstream

    def _request(self, body: bytes) -> http.client.HTTPResponse:
        """Send this request upstream with `body`; a keep-alive connection the upstream
        closed meanwhile is replaced once."""
        for attempt in (1, 2):
            conn = self._connection()
            reused = conn.sock is not None
            try:
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in self.headers.items():
                    if name.lower() not in HOP_BY_HOP:
                        conn.putheader(name, value)
                conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body)
                return conn.getresponse()
            except (http.client.HTTPException, OSError) as exc:
                conn.close()
                if attempt == 2 or not reused:
                    raise _UpstreamError(f"upstream failed: {exc!r}") from exc
        raise AssertionError("unreachable")

    def _forward_body(self, body: bytes) -> Reply:
        resp = self._request(body)
        try:
            data = resp.read()
        except (http.client.HTTPException, OSError) as exc:
            raise _UpstreamError(f"upstream failed: {exc!r}") from exc
        return Reply(resp.status, resp.getheaders(), data)

    def _forward(self, call: AwsCall) -> Reply:
        tokens = self.server.tokens
        repeat = tokens.answer(call)
        if repeat is not None:
            return repeat
        reply = self._forward_body(call.body)
        tokens.remember(call, reply)
        return reply

    def _stream(self, body: bytes) -> None:
        """Pass the upstream's answer on as it arrives."""
        resp = self._request(body)
        self.send_response_only(resp.status, resp.reason)
        for name, value in resp.getheaders():
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        length = resp.getheader("Content-Length")
        bodiless = self.command == "HEAD" or resp.status in (204, 304) or resp.status < 200
        if bodiless:
            if length is not None:
                self.send_header("Content-Length", length)
            self.end_headers()
            resp.read()
            return
        chunked = length is None or resp.chunked
        if chunked and self.request_version != "HTTP/1.1":
            data = resp.read()
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(length))
        self.end_headers()
        while True:
            piece = resp.read1(CHUNK)
            if not piece:
                break
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    # -- client side

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            pieces: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(pieces)
                pieces.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, reply: Reply) -> None:
        try:
            self.send_response_only(reply.status)
            for name, value in reply.headers:
                if name.lower() not in HOP_BY_HOP:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply.body)
            self.wfile.flush()
        except ConnectionError:  # the client gave up waiting (timeout_after)
            self.close_connection = True


def _json(status: int, data: Any) -> Reply:
    return Reply(status, [("Content-Type", "application/json")], json.dumps(data).encode())


class FaultProxy:
    """The proxy on a thread, for tests and the chaos scenario.

    with FaultProxy(emulator_url, seed=7) as proxy:
        proxy.set_rules([FaultRule("dynamodb", "throttle", 0.2)])
        ... point AWS_ENDPOINT_URL at proxy.url ...
        proxy.stats()  # {"throttle:PutItem": 3, ...}
    """

    def __init__(
        self, upstream: str, *, host: str = "127.0.0.1", port: int = 0, seed: int | None = None
    ) -> None:
        self.upstream = upstream
        self._host = host
        self._port = port
        self._seed = seed
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._rules: list[FaultRule] = []
        self.url = ""

    def _bind(self) -> _Server:
        if self._server is None:
            self._server = _Server((self._host, self._port), self.upstream, self._seed)
            self._server.book.set(self._rules)
            self.url = f"http://{self._host}:{self._server.server_address[1]}"
        return self._server

    def start(self) -> FaultProxy:
        server = self._bind()
        self._thread = threading.Thread(target=server.serve_forever, name="faults", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server = self._server
        if server is None:
            return
        server.stopping.set()  # cut held answers short
        if self._thread is not None:
            server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        server.server_close()
        server.close_connections()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_rules(self, rules: Sequence[FaultRule]) -> None:
        self._rules = list(rules)
        if self._server is not None:
            self._server.book.set(self._rules)

    def clear(self) -> None:
        self.set_rules([])

    def rules(self) -> list[FaultRule]:
        return list(self._server.book.rules()) if self._server is not None else list(self._rules)

    def stats(self) -> dict[str, int]:
        return self._server.book.stats() if self._server is not None else {}
