"""Fixtures shared by every test: a moto server on loopback and a provisioned stack.

The emulator is a separate process (as in production the AWS endpoint is another host),
started once per session; each test that takes `stack` gets it reset and provisioned anew.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from core.aws.clients import AwsClients
from core.platform.settings import Settings
from localstack.provision import provision
from tests.support import ROOT, running_emulator

# Credentials for the emulator only; set before any boto3 session is made.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


# Provisioning creates this key with every scope; API tests send it unless they test auth.
TEST_API_KEY = "hk_test_0123456789abcdef0123456789abcdef"
AUTH = {"X-API-Key": TEST_API_KEY}


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_emulator(tmp_path_factory.mktemp("moto")) as url:
        yield url


def reset_emulator(endpoint: str) -> None:
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10) as resp:
        resp.read()


@dataclass
class Stack:
    """A provisioned set of AWS resources, the settings that name them and their clients."""

    settings: Settings
    clients: AwsClients

    @property
    def endpoint(self) -> str:
        return str(self.settings.aws_endpoint_url)

    def env(self) -> dict[str, str]:
        """Environment for a Herald process that should use this stack."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": self.settings.aws_region,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "HERALD_RESOURCE_PREFIX": self.settings.resource_prefix,
        }

    def cli(self, module: str, *args: str) -> Any:
        """Run `python -m module args` against this stack; its stdout as JSON."""
        out = subprocess.run(
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            env={**self.env(), "PATH": ""},
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(out.stdout)

    def receive_all(self, queue: str, attempts: int = 3) -> list[dict[str, Any]]:
        """Every message currently in `queue` (left invisible for the visibility timeout)."""
        url = self.clients.queue_url(queue)
        messages: list[dict[str, Any]] = []
        empty = 0
        while empty < attempts:
            resp = self.clients.sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                MessageAttributeNames=["All"],
                AttributeNames=["All"],
                WaitTimeSeconds=0,
            )
            batch = resp.get("Messages", [])
            if not batch:
                empty += 1
            messages.extend(batch)
        return messages


@pytest.fixture
def settings(moto_endpoint: str) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        AWS_ENDPOINT_URL=moto_endpoint,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        resource_prefix="herald-test",
        bootstrap_api_key=TEST_API_KEY,
        wait_time_seconds=0,
    )


@pytest.fixture
def stack(moto_endpoint: str, settings: Settings) -> Stack:
    reset_emulator(moto_endpoint)
    clients = AwsClients(settings)
    provision(settings, clients)
    return Stack(settings, clients)


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[Any]:
    """The provider sandbox (`localstack.sandbox.Sandbox`: fake Twilio, SendGrid and chat
    webhooks) in a thread on a free loopback port."""
    from localstack.sandbox import Sandbox

    with Sandbox() as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server: Any) -> Any:
    """The session's sandbox with no recorded requests and no faults."""
    sandbox_server.reset()
    return sandbox_server


# --- AWS faults ----------------------------------------------------------------------------

from localstack.faults import FaultProxy  # noqa: E402


@pytest.fixture
def fault_proxy(moto_endpoint: str) -> Iterator[FaultProxy]:
    """A fault proxy (`localstack.faults`) in front of the session's emulator, with no
    rules: pass-through until the test sets some."""
    with FaultProxy(moto_endpoint) as proxy:
        yield proxy


@pytest.fixture
def faulty_settings(settings: Settings, fault_proxy: FaultProxy) -> Settings:
    """`settings` with AWS reached through `fault_proxy`."""
    return settings.model_copy(update={"aws_endpoint_url": fault_proxy.url})
