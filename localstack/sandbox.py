"""The provider sandbox: a local fake of Twilio, SendGrid and Slack / Teams webhooks.

    python -m localstack.sandbox [--host 127.0.0.1] [--port 8025]

The real SDKs are pointed here (see `notifiers.registry`), so the whole send path runs
without credentials and every delivery can be inspected. Tests use `Sandbox`, which runs the
same server in a thread on a free loopback port.

Provider endpoints
    POST /2010-04-01/Accounts/{sid}/Messages.json   Twilio (form, HTTP basic auth) -> 201
         To numbers as in Twilio's test credentials: +15005550001 -> 400 21211 (invalid),
         +15005550002 -> 400 21612 (unroutable), +15005550003 -> 400 21408 (no permission),
         +15005550004 -> 400 21610 (unsubscribed), +15005550009 -> 400 21614 (not mobile);
         also with a `whatsapp:` prefix.
    POST /twilio/status                             a stand-in status callback -> 204
    POST /v3/mail/send                              SendGrid (JSON, Bearer) -> 202 + X-Message-Id;
                                                    any address @invalid.example -> 400
    POST /slack/<anything>                          -> 200 "ok"
    POST /teams/<anything>                          -> 200 "1"

Control endpoints
    GET    /sandbox/messages[?provider=&notification_id=]   recorded requests, oldest first
    DELETE /sandbox/messages                                forget them
    GET    /sandbox/faults     POST /sandbox/faults     DELETE /sandbox/faults
    GET    /sandbox/health

Every provider request is recorded, faulted or not: `received_at` (epoch seconds), method,
path, query, headers, raw `body`, parsed `form` / `json`, `provider`, `auth`, `status` (what
was answered), `message_id`, `fault` and `notification_id`, found per provider as:
    twilio    the `notification_id` query parameter of the `StatusCallback` URL
    sendgrid  `custom_args.notification_id` (top level or first personalization)
    chat      the `X-Herald-Notification-Id` header (also honoured for the others)

Faults (`POST /sandbox/faults`, a JSON object or a list of them):
    provider     twilio | sendgrid | slack | teams; omitted = every provider
    status       HTTP status to answer instead of handling the request
    code         Twilio error code for the body (default 20429 for 429, 20500 for 5xx)
    body         answer this text instead of the provider-shaped error body (with any
                 status, 200 included: e.g. a Teams connector's 200 "...HTTP error 429")
    retry_after  seconds, sent as Retry-After
    latency_ms   delay before answering (alone: a slow but successful request)
    count        apply to the next N matching requests, then drop the fault
    rate         apply to this fraction of matching requests (0..1; default 1)
    seed         seed the fault's random generator so a rate is reproducible
Faults are checked in the order they were added; the first one that fires applies.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import json
import logging
import random
import re
import signal
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger("herald.sandbox")

PROVIDERS = ("twilio", "sendgrid", "slack", "teams")
# The header the chat notifier sets (`notifiers.base.NOTIFICATION_ID_HEADER`); repeated
# here because localstack/ does not import notifiers/.
NOTIFICATION_ID_HEADER = "X-Herald-Notification-Id"

TWILIO_MESSAGES = re.compile(r"^/2010-04-01/Accounts/(?P<sid>[^/]+)/Messages\.json$")
TWILIO_MAGIC_TO: dict[str, tuple[int, str]] = {
    "+15005550001": (21211, "The 'To' number {to} is not a valid phone number."),
    "+15005550002": (21612, "The 'To' phone number: {to}, is not currently reachable."),
    "+15005550003": (21408, "Permission to send an SMS has not been enabled for {to}."),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient {to}."),
    "+15005550009": (21614, "The 'To' number {to} is not a valid mobile number."),
}
INVALID_EMAIL_DOMAIN = "@invalid.example"


# --- state ---------------------------------------------------------------------------------


@dataclass
class Fault:
    """One injected failure or delay; see the module docstring for the fields."""

    provider: str | None = None
    status: int | None = None
    code: int | None = None
    retry_after: float | None = None
    latency_ms: float = 0.0
    body: str | None = None
    count: int | None = None
    rate: float | None = None
    seed: int | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    fired: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        if self.provider is not None and self.provider not in PROVIDERS:
            raise ValueError(f"provider must be one of {PROVIDERS}")
        if self.status is None and not self.latency_ms:
            raise ValueError("a fault needs a status or a latency_ms")
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError("status must be an HTTP status")
        if self.count is not None and self.count < 1:
            raise ValueError("count must be at least 1")
        if self.rate is not None and not 0.0 <= self.rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        if self.latency_ms < 0:
            raise ValueError("latency_ms must not be negative")
        self._rng = random.Random(self.seed)

    @classmethod
    def from_spec(cls, spec: Any) -> Fault:
        if not isinstance(spec, dict):
            raise ValueError("a fault is a JSON object")
        unknown = set(spec) - set(FAULT_FIELDS)
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        try:
            return cls(**spec)
        except TypeError as exc:
            raise ValueError(str(exc)) from exc

    def public(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in (*FAULT_FIELDS, "id", "fired")}


FAULT_FIELDS = (
    "provider",
    "status",
    "code",
    "retry_after",
    "latency_ms",
    "body",
    "count",
    "rate",
    "seed",
)


class SandboxState:
    """Recorded requests and active faults, shared by the server's handler threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[dict[str, Any]] = []
        self._faults: list[Fault] = []
        self._seq = 0
        self.stopping = threading.Event()

    def record(self, entry: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._seq += 1
            entry["seq"] = self._seq
            self._records.append(entry)
        return entry

    def update(self, entry: dict[str, Any], **values: Any) -> None:
        with self._lock:
            entry.update(values)

    def messages(
        self, provider: str | None = None, notification_id: str | None = None
    ) -> list[dict[str, Any]]:
        with self._lock:
            return [
                copy.deepcopy(r)
                for r in self._records
                if (provider is None or r["provider"] == provider)
                and (notification_id is None or r["notification_id"] == notification_id)
            ]

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def add_fault(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def faults(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.public() for f in self._faults]

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def pick_fault(self, provider: str) -> Fault | None:
        """The first fault that fires for this request; counts down and drops spent ones."""
        with self._lock:
            for fault in self._faults:
                if fault.provider not in (None, provider):
                    continue
                if fault.rate is not None and fault._rng.random() >= fault.rate:
                    continue
                fault.fired += 1
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count == 0:
                        self._faults.remove(fault)
                return copy.copy(fault)
        return None


# --- HTTP ----------------------------------------------------------------------------------


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


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    message_id: str | None = None

    @classmethod
    def json(cls, status: int, data: Any, **kwargs: Any) -> _Reply:
        return cls(status, json.dumps(data).encode(), **kwargs)

    @classmethod
    def text(cls, status: int, text: str) -> _Reply:
        return cls(status, text.encode(), content_type="text/plain; charset=utf-8")


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
        # Recorded before answering, so a request still waiting in a latency fault counts.
        self.server.state.record(entry)
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

    def _provider_reply(self, entry: dict[str, Any], provider: str | None) -> _Reply:
        if provider is None or self.command != "POST":
            if entry["path"] == "/twilio/status" and self.command == "POST":
                return _Reply(204)
            return _Reply.json(404, {"error": f"no such endpoint: {self.command} {entry['path']}"})
        fault = self.server.state.pick_fault(provider)
        if fault is not None:
            self.server.state.update(entry, fault=fault.public())
            if fault.latency_ms and self.server.state.stopping.wait(fault.latency_ms / 1000):
                return _Reply.text(503, "sandbox stopping")
            if fault.status is not None:
                return _fault_reply(provider, fault)
        if provider == "twilio":
            return _twilio(entry)
        if provider == "sendgrid":
            return _sendgrid(entry)
        return _Reply.text(200, "ok" if provider == "slack" else "1")

    def _control(self, path: str, query: dict[str, str], raw: bytes) -> _Reply:
        state = self.server.state
        if path == "/sandbox/health" and self.command == "GET":
            return _Reply.json(200, {"ok": True})
        if path == "/sandbox/messages":
            if self.command == "GET":
                return _Reply.json(
                    200, state.messages(query.get("provider"), query.get("notification_id"))
                )
            if self.command == "DELETE":
                state.clear()
                return _Reply(204)
        if path == "/sandbox/faults":
            if self.command == "GET":
                return _Reply.json(200, state.faults())
            if self.command == "DELETE":
                state.clear_faults()
                return _Reply(204)
            if self.command == "POST":
                try:
                    spec = json.loads(raw or b"null")
                    specs = spec if isinstance(spec, list) else [spec]
                    faults = [Fault.from_spec(s) for s in specs]
                except ValueError as exc:
                    return _Reply.json(400, {"error": str(exc)})
                return _Reply.json(201, [state.add_fault(f).public() for f in faults])
        return _Reply.json(404, {"error": f"no such endpoint: {self.command} {path}"})

    def _send(self, reply: _Reply) -> None:
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
    if TWILIO_MESSAGES.match(path):
        return "twilio"
    if path == "/v3/mail/send":
        return "sendgrid"
    for name in ("slack", "teams"):
        if path.startswith(f"/{name}/"):
            return name
    return None


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
    if entry["provider"] == "twilio" and entry["form"]:
        callback = entry["form"].get("StatusCallback")
        if isinstance(callback, str):
            ids = parse_qs(urlsplit(callback).query).get("notification_id")
            return ids[0] if ids else None
    if entry["provider"] == "sendgrid" and isinstance(entry["json"], dict):
        body = entry["json"]
        args = dict(body.get("custom_args") or {})
        for personalization in body.get("personalizations") or []:
            if isinstance(personalization, dict):
                args = {**(personalization.get("custom_args") or {}), **args}
        value = args.get("notification_id")
        return str(value) if value is not None else None
    return None


# --- provider behaviour --------------------------------------------------------------------


def _twilio_error(status: int, code: int, message: str) -> _Reply:
    return _Reply.json(
        status,
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
    )


def _sendgrid_error(status: int, message: str, field_: str | None = None) -> _Reply:
    return _Reply.json(status, {"errors": [{"message": message, "field": field_, "help": None}]})


def _fault_reply(provider: str, fault: Fault) -> _Reply:
    status = int(fault.status or 500)
    headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
    message = f"sandbox fault {fault.id}"
    if fault.body is not None:
        reply = _Reply.text(status, fault.body)
    elif provider == "twilio":
        code = fault.code or (20429 if status == 429 else 20500 if status >= 500 else status)
        reply = _twilio_error(status, code, message)
    elif provider == "sendgrid":
        reply = _sendgrid_error(status, message)
    else:
        reply = _Reply.text(status, "rate_limited" if status == 429 else message)
    reply.headers.update(headers)
    return reply


def _twilio(entry: dict[str, Any]) -> _Reply:
    sid = TWILIO_MESSAGES.match(entry["path"]).group("sid")  # type: ignore[union-attr]
    auth = entry["auth"] or {}
    if auth.get("scheme") != "basic" or not auth.get("username") or not auth.get("password"):
        return _twilio_error(401, 20003, "Authenticate")
    form: dict[str, Any] = entry["form"] or {}
    to, sender = form.get("To"), form.get("From")
    service = form.get("MessagingServiceSid")
    if not to:
        return _twilio_error(400, 21604, "A 'To' phone number is required.")
    if not sender and not service:
        return _twilio_error(400, 21603, "A 'From' phone number is required.")
    if not form.get("Body") and not form.get("MediaUrl") and not form.get("ContentSid"):
        return _twilio_error(400, 21602, "Message body is required.")
    magic = TWILIO_MAGIC_TO.get(str(to).removeprefix("whatsapp:"))
    if magic is not None:
        return _twilio_error(400, magic[0], magic[1].format(to=to))
    message_sid = f"SM{uuid.uuid4().hex}"
    now = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
    uri = f"/2010-04-01/Accounts/{sid}/Messages/{message_sid}.json"
    body = {
        "sid": message_sid,
        "account_sid": sid,
        "api_version": "2010-04-01",
        "body": form.get("Body", ""),
        "date_created": now,
        "date_updated": now,
        "date_sent": None,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": sender,
        "messaging_service_sid": service,
        "num_media": "0",
        "num_segments": "1",
        "price": None,
        "price_unit": "USD",
        "status": "accepted" if service and not sender else "queued",
        "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
        "to": to,
        "uri": uri,
    }
    return _Reply.json(201, body, message_id=message_sid)


def _sendgrid(entry: dict[str, Any]) -> _Reply:
    auth = entry["auth"] or {}
    if auth.get("scheme") != "bearer" or not auth.get("token"):
        return _sendgrid_error(
            401, "The provided authorization grant is invalid, expired, or revoked"
        )
    mail = entry["json"]
    if not isinstance(mail, dict):
        return _sendgrid_error(400, "Bad Request", None)
    personalizations = mail.get("personalizations") or []
    if not personalizations:
        return _sendgrid_error(400, "The personalizations field is required.", "personalizations")
    for p_index, personalization in enumerate(personalizations):
        for kind in ("to", "cc", "bcc"):
            for a_index, address in enumerate(personalization.get(kind) or []):
                email = str(address.get("email", ""))
                if "@" not in email or email.lower().endswith(INVALID_EMAIL_DOMAIN):
                    return _sendgrid_error(
                        400,
                        "Does not contain a valid address.",
                        f"personalizations.{p_index}.{kind}.{a_index}.email",
                    )
    if not (mail.get("from") or {}).get("email"):
        return _sendgrid_error(400, "The from object must be provided.", "from")
    if not mail.get("subject") and not any(p.get("subject") for p in personalizations):
        return _sendgrid_error(400, "The subject is required.", "subject")
    if not mail.get("content") and not mail.get("template_id"):
        return _sendgrid_error(
            400,
            "Unless a valid template_id is provided, the content parameter is required.",
            "content",
        )
    message_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    return _Reply(202, headers={"X-Message-Id": message_id}, message_id=message_id)


# --- running it ----------------------------------------------------------------------------


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
        """Inject a fault (see the module docstring); returns it as the API would."""
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


if __name__ == "__main__":
    sys.exit(main())
