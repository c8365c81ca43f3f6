"""The sandbox's HTTP server: every provider request is recorded (`recording`), answered by
an injected fault or by its provider's fake (`twilio`, `sendgrid`, `chat`); the control
endpoints under /sandbox/ read and reset the record and the faults. `Sandbox` runs it in a
thread (tests, the benchmarks), `main` in the foreground (`python -m localstack.sandbox`).

Every request records `received_at` (epoch seconds), method, path, query, headers, raw
`body`, parsed `form` / `json`, `provider`, `auth`, `status` (what was answered),
`message_id`, `fault` and `notification_id`: the `X-Herald-Notification-Id` header for any
provider, else where the provider's module finds it. A SendGrid send with attachments also
records `attachments` (name, type, disposition, size) without their content, which
`GET /sandbox/messages/<seq>/attachments/<index>` answers.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import logging
import re
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from localstack.sandbox import chat, sendgrid, twilio
from localstack.sandbox.recording import Fault, SandboxState
from localstack.sandbox.reply import Reply

log = logging.getLogger("herald.sandbox")

# The header the chat notifier sets (`notifiers.base.NOTIFICATION_ID_HEADER`); repeated
# here because localstack/ does not import notifiers/.
NOTIFICATION_ID_HEADER = "X-Herald-Notification-Id"
ATTACHMENT_PATH = re.compile(r"^/sandbox/messages/(\d{1,12})/attachments/(\d{1,3})$")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The SendGrid SDK opens a connection per request, ten workers' sends at once: with the
    # standard library's listen backlog of 5, connections overflow it and the kernel drops
    # their SYN, which the client repeats only after a second.
    request_queue_size = 128
    state: SandboxState

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out and hung up is expected (latency faults); stay quiet.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in two writes; with Nagle's algorithm the body waits for
        # the client's delayed ACK of the headers (about 40 ms) on a kept-alive connection.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    # -- dispatch

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        received_at = time.time()
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if parts.path.startswith("/sandbox/"):
            self._send(self._control(parts.path, query, raw))
            return
        provider = _provider(parts.path)
        entry: dict[str, Any] = {
            "received_at": received_at,
            "method": self.command,
            "path": parts.path,
            "query": query,
            "headers": dict(self.headers.items()),
            "body": raw.decode("utf-8", errors="replace"),
            "form": None,
            "json": None,
            "provider": provider,
            "auth": _auth(self.headers.get("Authorization")),
            "notification_id": None,
            "status": None,
            "message_id": None,
            "fault": None,
        }
        _parse_body(entry, raw, self.headers.get("Content-Type", ""))
        entry["notification_id"] = _notification_id(entry)
        files = sendgrid.take_attachments(entry) if provider == sendgrid.NAME else []
        # Recorded before answering, so a request still waiting in a latency fault counts.
        self.server.state.record(entry)
        if files:
            self.server.state.keep_files(entry["seq"], files)
        reply = self._provider_reply(entry, provider)
        self.server.state.update(entry, status=reply.status, message_id=reply.message_id)
        log.info(
            "%s %s -> %d notification=%s",
            provider or "-",
            self.command,
            reply.status,
            entry["notification_id"],
        )
        self._send(reply)

    def _provider_reply(self, entry: dict[str, Any], provider: str | None) -> Reply:
        if provider is None or self.command != "POST":
            if entry["path"] == twilio.STATUS_CALLBACK and self.command == "POST":
                return Reply(204)
            return Reply.json(404, {"error": f"no such endpoint: {self.command} {entry['path']}"})
        fault = self.server.state.pick_fault(provider)
        if fault is not None:
            self.server.state.update(entry, fault=fault.public())
            if fault.latency_ms and self.server.state.stopping.wait(fault.latency_ms / 1000):
                return Reply.text(503, "sandbox stopping")
            if fault.status is not None:
                return _fault_reply(provider, fault)
        if provider == twilio.NAME:
            return twilio.reply(entry)
        if provider == sendgrid.NAME:
            return sendgrid.reply(entry)
        return chat.reply(provider)

    def _control(self, path: str, query: dict[str, str], raw: bytes) -> Reply:
        state = self.server.state
        if path == "/sandbox/health" and self.command == "GET":
            return Reply.json(200, {"ok": True})
        if path == "/sandbox/messages":
            if self.command == "GET":
                return Reply.json(
                    200, state.messages(query.get("provider"), query.get("notification_id"))
                )
            if self.command == "DELETE":
                state.clear()
                return Reply(204)
        attachment = ATTACHMENT_PATH.match(path)
        if attachment and self.command == "GET":
            seq, index = int(attachment[1]), int(attachment[2])
            found = state.file(seq, index)
            if found is None:
                return Reply.json(404, {"error": f"no attachment {index} of message {seq}"})
            return Reply(200, found[1], content_type=found[0])
        if path == "/sandbox/faults":
            if self.command == "GET":
                return Reply.json(200, state.faults())
            if self.command == "DELETE":
                state.clear_faults()
                return Reply(204)
            if self.command == "POST":
                try:
                    spec = json.loads(raw or b"null")
                    specs = spec if isinstance(spec, list) else [spec]
                    faults = [Fault.from_spec(s) for s in specs]
                except ValueError as exc:
                    return Reply.json(400, {"error": str(exc)})
                return Reply.json(201, [state.add_fault(f).public() for f in faults])
        return Reply.json(404, {"error": f"no such endpoint: {self.command} {path}"})

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        if reply.body or reply.status not in (204, 304):
            self.send_header("Content-Type", reply.content_type)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if reply.body:
            self.wfile.write(reply.body)


def _provider(path: str) -> str | None:
    if twilio.matches(path):
        return twilio.NAME
    if sendgrid.matches(path):
        return sendgrid.NAME
    return chat.provider(path)


def _parse_body(entry: dict[str, Any], raw: bytes, content_type: str) -> None:
    text = raw.decode("utf-8", errors="replace")
    if "application/x-www-form-urlencoded" in content_type:
        form = parse_qs(text, keep_blank_values=True)
        entry["form"] = {k: v[0] if len(v) == 1 else v for k, v in form.items()}
    elif raw:
        with contextlib.suppress(ValueError):
            entry["json"] = json.loads(text)


def _auth(value: str | None) -> dict[str, str] | None:
    if not value:
        return None
    scheme, _, credentials = value.partition(" ")
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(credentials).decode().partition(":")
        except ValueError:
            return {"scheme": "basic", "invalid": credentials}
        return {"scheme": "basic", "username": user, "password": password}
    return {"scheme": scheme.lower(), "token": credentials}


def _notification_id(entry: dict[str, Any]) -> str | None:
    headers = {k.lower(): v for k, v in entry["headers"].items()}
    found = headers.get(NOTIFICATION_ID_HEADER.lower())
    if found:
        return str(found)
    if entry["provider"] == twilio.NAME:
        return twilio.notification_id(entry)
    if entry["provider"] == sendgrid.NAME:
        return sendgrid.notification_id(entry)
    return None


def _fault_reply(provider: str, fault: Fault) -> Reply:
    status = int(fault.status or 500)
    headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
    message = f"sandbox fault {fault.id}"
    if fault.body is not None:
        reply = Reply.text(status, fault.body)
    elif provider == twilio.NAME:
        reply = twilio.fault_reply(status, fault.code, message)
    elif provider == sendgrid.NAME:
        reply = sendgrid.fault_reply(status, message)
    else:
        reply = chat.fault_reply(status, message)
    reply.headers.update(headers)
    return reply


class Sandbox:
    """The sandbox server in a background thread, for tests and embedding.

    with Sandbox() as sandbox:
        ... point a notifier at sandbox.url ...
        sandbox.fail("twilio", 500, count=1)
        assert sandbox.messages("twilio")[0]["status"] == 500
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = SandboxState()
        self._server = _Server((host, port), _Handler)
        self._server.state = self.state
        self._host = host
        self._thread: threading.Thread | None = None
        self._serving = False

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def start(self) -> Sandbox:
        self._serving = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="sandbox", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve on the calling thread until `stop()` (from another thread)."""
        self._serving = True
        self._server.serve_forever()

    def stop(self) -> None:
        self.state.stopping.set()  # cut short requests sleeping in a latency fault
        if self._serving:
            self._serving = False
            self._server.shutdown()  # blocks until serve_forever returns
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def messages(
        self, provider: str | None = None, notification_id: str | None = None
    ) -> list[dict[str, Any]]:
        return self.state.messages(provider, notification_id)

    def clear(self) -> None:
        self.state.clear()

    def fail(
        self,
        provider: str | None = None,
        status: int | None = None,
        *,
        count: int | None = None,
        rate: float | None = None,
        retry_after: float | None = None,
        latency_ms: float = 0.0,
        code: int | None = None,
        body: str | None = None,
        seed: int | None = None,
    ) -> dict[str, Any]:
        """Inject a fault (fields: `localstack.sandbox.recording`); returns it as the API would."""
        fault = Fault(
            provider=provider,
            status=status,
            count=count,
            rate=rate,
            retry_after=retry_after,
            latency_ms=latency_ms,
            code=code,
            body=body,
            seed=seed,
        )
        return self.state.add_fault(fault).public()

    def clear_faults(self) -> None:
        self.state.clear_faults()

    def reset(self) -> None:
        self.clear()
        self.clear_faults()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Local fake of Twilio, SendGrid and chat webhooks."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(name)s %(message)s",
        stream=sys.stdout,
    )
    sandbox = Sandbox(args.host, args.port)

    def _terminate(signum: int, frame: object) -> None:
        # shutdown() waits for serve_forever to return, so it must run on another thread.
        threading.Thread(target=sandbox.stop, daemon=True).start()

    signal.signal(signal.SIGTERM, _terminate)
    log.info("provider sandbox on %s", sandbox.url)
    try:
        sandbox.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
    return 0
