"""A running console stack for the browser tests: an emulator of its own (other tests
restore the session's emulator from snapshots), the API served by uvicorn in a thread on a
free loopback port, and a router and the SMS and email workers as processes against the
provider sandbox, as `make run` runs them."""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import uvicorn
from twilio.request_validator import RequestValidator

from api.main import create_app
from core.aws.clients import AwsClients
from core.platform.settings import Settings
from localstack.provision import provision
from tests.conftest import AUTH, TEST_API_KEY
from tests.support import free_port, http_ok, running_emulator, start_python, stop, wait_until

PREFIX = "herald-console"
CHANNELS = ("sms", "email")
PIPELINE_ENV = {
    "HERALD_WAIT_TIME_SECONDS": "1",
    "HERALD_VISIBILITY_TIMEOUT_SECONDS": "10",
    "HERALD_RETRY_BASE_SECONDS": "1",
    "HERALD_RETRY_CAP_SECONDS": "2",
    "HERALD_MAX_ATTEMPTS": "2",
}


@dataclass
class ConsoleStack:
    base: str
    api: httpx.Client
    settings: Settings
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def user(self, **contacts: Any) -> str:
        """A user with these contacts who wants activity by SMS and email."""
        user_id = f"u-{uuid.uuid4().hex[:10]}"
        resp = self.api.put(f"/users/{user_id}", json={"timezone": "UTC", **contacts})
        assert resp.status_code in (200, 201), resp.text
        prefs = {"categories": {"activity": list(CHANNELS)}}
        resp = self.api.put(f"/users/{user_id}/preferences", json=prefs)
        assert resp.status_code == 200, resp.text
        return user_id

    def post_event(self, body: dict[str, Any]) -> str:
        resp = self.api.post("/events", json=body)
        assert resp.status_code == 202, resp.text
        return str(resp.json()["event_id"])

    def event(self, event_id: str) -> dict[str, Any]:
        return dict(self.api.get(f"/events/{event_id}").json())

    def twilio_receipt(self, notification_id: str, message_sid: str, status: str) -> None:
        """Post Twilio's status callback for a notification, signed with the stack's
        (sandbox) auth token as Twilio signs it."""
        url = f"{self.base}/webhooks/twilio?{urlencode({'notification_id': notification_id})}"
        params = {"MessageSid": message_sid, "MessageStatus": status}
        signature = RequestValidator(self.settings.twilio_auth_token).compute_signature(url, params)
        resp = httpx.post(
            url,
            content=urlencode(params),
            headers={
                "content-type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": signature,
            },
        )
        assert resp.status_code == 200, resp.text

    def wait_for_event(self, event_id: str, statuses: set[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}

        def settled() -> bool:
            found.update(self.api.get(f"/events/{event_id}").json())
            return found.get("status") in statuses

        assert wait_until(settled, timeout=45, interval=0.3), f"event stuck: {found}"
        return found

    def assert_alive(self) -> None:
        dead = {name: p.returncode for name, p in self.processes.items() if p.poll() is not None}
        assert not dead, f"processes exited: {dead}"


@contextmanager
def serving(app: Any, port: int) -> Iterator[None]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def console_stack(work: Path, sandbox_port: int) -> Iterator[ConsoleStack]:
    with running_emulator(work) as endpoint:
        env = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "HERALD_RESOURCE_PREFIX": PREFIX,
            "HERALD_SANDBOX": "true",
            "HERALD_SANDBOX_PORT": str(sandbox_port),
            **PIPELINE_ENV,
        }
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            AWS_ENDPOINT_URL=endpoint,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            resource_prefix=PREFIX,
            bootstrap_api_key=TEST_API_KEY,
            sandbox_port=sandbox_port,
        )
        clients = AwsClients(settings)
        provision(settings, clients)
        commands = {
            "router": ["-m", "listeners.router"],
            **{f"worker-{c}": ["-m", "listeners.worker", "--channel", c] for c in CHANNELS},
        }
        processes = {
            name: start_python(args, env, work / f"{name}.log") for name, args in commands.items()
        }
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        try:
            with serving(create_app(settings, clients), port):
                assert wait_until(lambda: http_ok(f"{base}/health"), timeout=30), "no API"
                with httpx.Client(base_url=base, timeout=10, headers=AUTH) as api:
                    yield ConsoleStack(base, api, settings, processes)
        finally:
            for proc in processes.values():
                proc.terminate()
            deadline = time.monotonic() + 15
            for proc in processes.values():
                try:
                    proc.wait(max(deadline - time.monotonic(), 0.1))
                except subprocess.TimeoutExpired:
                    stop(proc, 1)
