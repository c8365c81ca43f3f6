"""The whole pipeline as real processes: the API (uvicorn), the router and one worker per
channel, against the provider sandbox and, as under `make run`, two emulator processes
(SNS and SQS in the session's, DynamoDB in one of its own), all on loopback."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.aws.clients import AwsClients
from core.catalogue.event_types import CHANNELS
from core.platform.settings import Settings
from localstack.provision import provision
from tests.conftest import AUTH, TEST_API_KEY, reset_emulator
from tests.support import free_port, http_ok, running_emulator, start_python, stop, wait_until

PREFIX = "herald-e2e"
# Short timings so retries and shutdown happen within a test's patience.
PIPELINE_ENV = {
    "HERALD_WAIT_TIME_SECONDS": "1",
    "HERALD_VISIBILITY_TIMEOUT_SECONDS": "10",
    "HERALD_RETRY_BASE_SECONDS": "1",
    "HERALD_RETRY_CAP_SECONDS": "2",
    "HERALD_MAX_ATTEMPTS": "3",
    "HERALD_FANOUT_PAGE_SIZE": "100",
}


@dataclass
class Herald:
    api: httpx.Client
    sandbox: Any
    clients: AwsClients
    settings: Settings
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def user(self, **contacts: Any) -> str:
        """A new user with these contacts and, if given, `categories` preferences."""
        user_id = f"u-{uuid.uuid4().hex[:10]}"
        categories = contacts.pop("categories", None)
        resp = self.api.put(f"/users/{user_id}", json={"timezone": "UTC", **contacts})
        assert resp.status_code in (200, 201), resp.text
        if categories is not None:
            resp = self.api.put(f"/users/{user_id}/preferences", json={"categories": categories})
            assert resp.status_code == 200, resp.text
        return user_id

    def post_event(self, body: dict[str, Any]) -> str:
        resp = self.api.post("/events", json=body)
        assert resp.status_code == 202, resp.text
        return str(resp.json()["event_id"])

    def event(self, event_id: str) -> dict[str, Any]:
        return dict(self.api.get(f"/events/{event_id}").json())

    def wait_for_event(
        self, event_id: str, statuses: set[str], timeout: float = 30
    ) -> dict[str, Any]:
        found: dict[str, Any] = {}

        def settled() -> bool:
            found.update(self.event(event_id))
            return found.get("status") in statuses

        assert wait_until(settled, timeout=timeout, interval=0.2), f"event stuck: {found}"
        return found

    def wait_for_notification(
        self, event_id: str, channel: str, statuses: set[str], timeout: float = 30
    ) -> dict[str, Any]:
        found: dict[str, Any] = {}

        def reached() -> bool:
            for n in self.event(event_id).get("notifications", []):
                if n["channel"] == channel:
                    found.clear()
                    found.update(n)
            return found.get("status") in statuses

        assert wait_until(reached, timeout=timeout, interval=0.2), f"notification stuck: {found}"
        return found

    def queue_depth(self, queue: str) -> int:
        attrs = self.clients.sqs.get_queue_attributes(
            QueueUrl=self.clients.queue_url(f"{PREFIX}-{queue}"),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(
            attrs["ApproximateNumberOfMessagesNotVisible"]
        )

    def assert_alive(self) -> None:
        dead = {name: p.returncode for name, p in self.processes.items() if p.poll() is not None}
        assert not dead, f"processes exited: {dead}"


@pytest.fixture(scope="session")
def dynamodb_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """DynamoDB's own emulator process (`AWS_ENDPOINT_URL_DYNAMODB`), as `make run` runs it."""
    with running_emulator(tmp_path_factory.mktemp("moto-dynamodb")) as url:
        yield url


@pytest.fixture(scope="module")
def herald(
    moto_endpoint: str,
    dynamodb_endpoint: str,
    sandbox_server: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Herald]:
    reset_emulator(moto_endpoint)
    reset_emulator(dynamodb_endpoint)
    env = {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "HERALD_RESOURCE_PREFIX": PREFIX,
        "HERALD_SANDBOX": "true",
        "HERALD_SANDBOX_PORT": str(sandbox_server.port),
        # As under supervisord: every process's metrics summed at the API's GET /metrics.
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path_factory.mktemp("metrics")),
        **PIPELINE_ENV,
    }
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        AWS_ENDPOINT_URL=moto_endpoint,
        AWS_ENDPOINT_URL_DYNAMODB=dynamodb_endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        resource_prefix=PREFIX,
        max_attempts=3,
        bootstrap_api_key=TEST_API_KEY,
    )
    clients = AwsClients(settings)
    provision(settings, clients)

    logs = Path(tmp_path_factory.mktemp("e2e-logs"))
    port = free_port()
    commands = {
        "api": ["-m", "uvicorn", "api.main:create_app", "--factory", "--port", str(port)],
        "router": ["-m", "listeners.router"],
        "due-sender": ["-m", "listeners.due_sender"],
        **{f"worker-{c}": ["-m", "listeners.worker", "--channel", c] for c in CHANNELS},
    }
    processes = {
        name: start_python(args, env, logs / f"{name}.log") for name, args in commands.items()
    }
    base = f"http://127.0.0.1:{port}"
    try:
        # Patient: eight processes start at once, beside whatever else the machine runs.
        assert wait_until(lambda: http_ok(f"{base}/health"), timeout=90), "API did not start"
        with httpx.Client(base_url=base, timeout=10, headers=AUTH) as api:
            herald = Herald(api, sandbox_server, clients, settings, processes)
            yield herald
            herald.assert_alive()
    finally:
        for proc in processes.values():
            proc.terminate()
        deadline = time.monotonic() + 15
        for name, proc in processes.items():
            try:
                proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                stop(proc, 1)
                tail = (logs / f"{name}.log").read_text()[-2000:]
                print(f"{name} did not stop on SIGTERM; log: {tail}")


@pytest.fixture
def sandbox(herald: Herald) -> Any:
    herald.sandbox.reset()
    return herald.sandbox
