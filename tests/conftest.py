"""Fixtures shared by every test: a moto server on loopback and a provisioned stack.

The emulator is a separate process (as in production the AWS endpoint is another host),
started once per session; each test that takes `stack` gets it as freshly provisioned
(restored from a snapshot of the first provisioning: `tests.support`).

Under pytest-xdist (`make test`) each worker is a session of its own, with its own
emulator, sandbox and database servers on free ports; the hooks at the end keep each costly
shared stack on one worker and bring the chaos table back to the terminal.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import botocore.session
import fastapi.dependencies.models
import pytest

from core.aws.clients import AwsClients
from core.platform.settings import Settings
from localstack.provision import provision
from tests.support import ROOT, emulator_snapshot, running_emulator

# Credentials for the emulator only; set before any boto3 session is made.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

# Every test builds its own AwsClients, a boto3 session each, and every session read and
# parsed botocore's JSON models and endpoint data again (about 0.1 s of CPU a test). The test
# process shares one loader among its sessions: the loaded models are only read, as they are
# by the clients of one session.
botocore.session.create_loader = functools.cache(botocore.session.create_loader)


# Provisioning creates this key with every scope; API tests send it unless they test auth.
TEST_API_KEY = "hk_test_0123456789abcdef0123456789abcdef"
AUTH = {"X-API-Key": TEST_API_KEY}


@pytest.fixture(autouse=True)
def forget_fastapi_apps() -> Iterator[None]:
    """Empty FastAPI's caches of endpoint callables after each test.

    `fastapi.dependencies.models` classifies endpoints and dependencies in module-level
    LRU caches keyed by the callable, and an endpoint that closes over its app keeps the
    app alive, with its AWS clients and their parsed service models. One app per process
    costs nothing; one app per test kept every earlier test's apps (gigabytes over the
    suite, and garbage collections that grew with them)."""
    yield
    for cached in vars(fastapi.dependencies.models).values():
        if callable(getattr(cached, "cache_clear", None)):
            cached.cache_clear()


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_emulator(tmp_path_factory.mktemp("moto"), snapshots=True) as url:
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
    """The emulator as a fresh provisioning leaves it: reset and provisioned the first time
    these settings are seen in the session, restored from the snapshot taken then after
    that (the same resources, in one request instead of a hundred)."""
    clients = AwsClients(settings)
    snapshot = "provisioned-" + hashlib.sha256(settings.model_dump_json().encode()).hexdigest()
    alone = settings.aws_endpoint_url == moto_endpoint and not settings.aws_endpoint_url_dynamodb
    if not (alone and emulator_snapshot(moto_endpoint, snapshot, restore=True)):
        reset_emulator(moto_endpoint)
        provision(settings, clients)
        if alone:
            emulator_snapshot(moto_endpoint, snapshot, restore=False)
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


# --- several workers (pytest-xdist) ------------------------------------------------------

# Tests that share a stack too costly to start twice, by folder: the chaos suite's
# supervisord stack (one per session), the e2e processes (one set per module, beside an
# emulator of their own), the console's browser and the CDK synthesis (one per session,
# a Node.js process that takes seconds). Under `--dist loadgroup` each group runs whole on
# one worker; the groups are handed out first, in this order (the chaos suite, the longest
# run of one worker, first), and every other test is handed out on its own as workers free
# up. (Grouped here by the scheduler, from the test's path: the `xdist_group` marker does
# not reach the scheduler under this pytest.)
SHARED_STACKS = {
    "tests/chaos/": "chaos",
    "tests/e2e/": "e2e",
    "tests/console/test_browser.py": "console",  # one stack and one browser
    "tests/deploy/": "deploy",  # one synthesis of the CDK app
}


def shared_stack(nodeid: str) -> str | None:
    """The group of tests sharing this test's stack, if any."""
    return next((g for folder, g in SHARED_STACKS.items() if nodeid.startswith(folder)), None)


def numbered_alike(nodeids: Sequence[str]) -> list[str]:
    """Test ids made unique: the scheduler keys its work by test id, and tests that share
    one (schemathesis names the test of every API operation alike) would all but the first
    never run. The workers are sent positions in the collection, not ids."""
    seen: collections.Counter[str] = collections.Counter()
    numbered = []
    for nodeid in nodeids:
        seen[nodeid] += 1
        numbered.append(nodeid if seen[nodeid] == 1 else f"{nodeid}#{seen[nodeid]}")
    return numbered


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class SharedStackScheduling(LoadGroupScheduling):
        def add_node_collection(self, node: Any, collection: Sequence[str]) -> None:
            super().add_node_collection(node, numbered_alike(collection))

        def _split_scope(self, nodeid: str) -> str:
            return shared_stack(nodeid) or str(super()._split_scope(nodeid))

        def _assign_work_unit(self, node: Any) -> None:
            # The shared stacks before any single test, in SHARED_STACKS' order (the
            # scheduler's own order is by size, which put the chaos suite behind a
            # larger group, a whole group's time later).
            for group in reversed(SHARED_STACKS.values()):
                if group in self.workqueue:
                    self.workqueue.move_to_end(group, last=False)
            super()._assign_work_unit(node)

    return SharedStackScheduling(config, log)


# Every collected test must have reported an outcome: a scheduler that loses tests would
# otherwise pass a run that ran less than it collected.
_outcomes = collections.Counter[str]()


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if exitstatus != 0 or not session.config.pluginmanager.hasplugin("dsession"):
        return
    ran = sum(_outcomes.values())
    if ran < session.testscollected:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        _outcomes["missing"] = session.testscollected - ran  # reported by the summary


# Chaos outcomes travel on the test reports (`user_properties`, which pytest-xdist sends to
# the controlling process), so the table is printed whether or not the run is split.
CHAOS_OUTCOME = "chaos_outcome"
_chaos_outcomes: list[dict[str, Any]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or (report.when == "setup" and not report.passed):
        _outcomes[report.outcome] += 1
    for name, value in report.user_properties:
        if name == CHAOS_OUTCOME and isinstance(value, dict):
            _chaos_outcomes.append(value)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _outcomes["missing"]:
        missing = _outcomes["missing"]
        terminalreporter.write_sep("=", f"{missing} collected tests never ran", red=True)
    if not _chaos_outcomes:
        return
    from tests.chaos.accounting import Outcome
    from tests.chaos.report import table
    from tests.chaos.scale import current

    terminalreporter.write_sep("=", f"chaos ({current().name})")
    terminalreporter.write_line(table([Outcome(**o) for o in _chaos_outcomes]))


def chaos_outcome_property(outcome: Any) -> tuple[str, dict[str, Any]]:
    """A chaos `Outcome` as a report's user property."""
    return CHAOS_OUTCOME, asdict(outcome)
