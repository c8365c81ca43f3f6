"""The processes a benchmark runs on loopback, and what /proc says about them.

The emulator (moto server), the provider sandbox, Herald's API under uvicorn, the router
and one worker per channel are separate processes, as in production and in tests/e2e.
Every Herald process counts its AWS calls (`HERALD_AWS_CALL_LOG`, see `core.aws.clients`).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from core.aws.clients import CALL_LOG_FLUSH_SECONDS, AwsClients
from core.catalogue.event_types import CHANNELS
from core.platform.settings import Settings
from localstack.provision import provision

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "herald-bench"
API_KEY = "hk_bench_" + "b3nch" * 8
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Long polls as long as SQS allows: idle receivers then cost few requests. The emulator
# can take seconds per call under load (one process for every service): calls get 30 s
# and messages 120 s of visibility, so its slowness shows as latency, not as timed-out
# calls and redelivered messages that would be done twice and counted twice. A record
# counts as stranded only past the longest retry wait plus that visibility (the settings
# refuse less).
PIPELINE_ENV = {
    # The workloads measure a notification per event (repeated likes and comments of one
    # post to one user); the catalogue's digests would fold them into fewer.
    "HERALD_DIGEST_TYPE_DEFAULTS": "false",
    "HERALD_WAIT_TIME_SECONDS": "20",
    "HERALD_AWS_TIMEOUT_SECONDS": "30",
    "HERALD_VISIBILITY_TIMEOUT_SECONDS": "120",
    "HERALD_RECONCILE_STRANDED_SECONDS": "600",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def http_ok(url: str) -> bool:
    try:
        # the URL is one of the benchmark's own loopback processes
        with urllib.request.urlopen(url, timeout=2) as resp:  # nosec B310
            return bool(resp.status < 500)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def http_json(method: str, url: str, body: Any = None, timeout: float = 30) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("content-type", "application/json")
    # the benchmark's own loopback processes, by URLs it builds itself
    with urllib.request.urlopen(request, timeout=timeout) as resp:  # nosec B310
        raw = resp.read()
    return json.loads(raw) if raw else None


@dataclass
class Proc:
    """A child process and its resource use, read from /proc."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    call_log: str | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def cpu_seconds(self) -> float:
        """User + system CPU time of every thread of the process so far."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def status_kb(self, key: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
        return 0

    def peak_rss_mb(self) -> float:
        return self.status_kb("VmHWM") / 1024

    def calls(self) -> dict[str, dict[str, int]]:
        """The AWS calls this process has counted, as last flushed to its file."""
        if self.call_log is None:
            return {}
        path = Path(f"{self.call_log}.{self.pid}.json")
        if not path.exists():
            return {}
        return dict(json.loads(path.read_text())["calls"])

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 15) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def start_python(
    name: str, args: list[str], env: Mapping[str, str], logs: Path, call_log: str | None = None
) -> Proc:
    full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    if call_log:
        full_env["HERALD_AWS_CALL_LOG"] = call_log
    log = logs / f"{name}.log"
    out = open(log, "ab")  # noqa: SIM115 - the child owns it
    popen = subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT
    )
    return Proc(name, popen, log, call_log)


@dataclass
class Snapshot:
    """Counters of a set of processes at one moment."""

    at: float
    cpu: dict[str, float]
    calls: dict[str, dict[str, dict[str, int]]]


def diff_calls(
    before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]
) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for service, ops in after.items():
        for op, count in ops.items():
            delta = count - before.get(service, {}).get(op, 0)
            if delta:
                out.setdefault(service, {})[op] = delta
    return out


@dataclass
class Stack:
    """The emulator, the sandbox and, per phase, a set of Herald processes."""

    workdir: Path
    moto: Proc | None = None
    sandbox: Proc | None = None
    moto_url: str = ""
    # DynamoDB in a second emulator process (AWS_ENDPOINT_URL_DYNAMODB), SNS and SQS in the
    # first: SNS delivers to SQS inside its process, DynamoDB stands alone.
    dynamodb: Proc | None = None
    dynamodb_url: str = ""
    sandbox_url: str = ""
    sandbox_port: int = 0
    herald: dict[str, Proc] = field(default_factory=dict)
    phase: str = ""
    # The emulators meter what AWS would bill (`localstack.capacity`, read on /_capacity).
    capacity: bool = False

    @property
    def logs(self) -> Path:
        path = self.workdir / "logs"
        path.mkdir(parents=True, exist_ok=True)
        return path

    # --- emulator and sandbox ------------------------------------------------------------

    def start(self, split_dynamodb: bool = True) -> None:
        os.environ.update(PIPELINE_ENV)  # the bench's own clients and provisioning too
        self.moto, self.moto_url = self._emulator("moto")
        if split_dynamodb:
            self.dynamodb, self.dynamodb_url = self._emulator("moto-dynamodb")
        self.sandbox_port = free_port()
        self.sandbox = start_python(
            "sandbox",
            ["-m", "localstack.sandbox", "--quiet", "--port", str(self.sandbox_port)],
            {},
            self.logs,
        )
        self.sandbox_url = f"http://127.0.0.1:{self.sandbox_port}"
        for url in self.emulator_urls:
            if not wait_until(partial(http_ok, f"{url}/moto-api/"), timeout=60):
                raise RuntimeError("the emulator did not start; see its log")
        if not wait_until(lambda: http_ok(f"{self.sandbox_url}/sandbox/health"), timeout=30):
            raise RuntimeError("the sandbox did not start; see its log")

    def _emulator(self, name: str) -> tuple[Proc, str]:
        port = free_port()
        args = ["-m", "localstack.emulator", "--quiet", "--port", str(port)]
        if self.capacity:
            args.append("--capacity")
        return start_python(name, args, {}, self.logs), f"http://127.0.0.1:{port}"

    @property
    def emulators(self) -> list[Proc]:
        return [p for p in (self.moto, self.dynamodb) if p is not None]

    @property
    def emulator_urls(self) -> list[str]:
        return [u for u in (self.moto_url, self.dynamodb_url) if u]

    def settings(self) -> Settings:
        return Settings(
            _env_file=None,  # type: ignore[call-arg]
            AWS_ENDPOINT_URL=self.moto_url,
            AWS_ENDPOINT_URL_DYNAMODB=self.dynamodb_url or None,
            AWS_DEFAULT_REGION="us-east-1",
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            resource_prefix=PREFIX,
            bootstrap_api_key=API_KEY,
        )

    def fresh_aws(self) -> AwsClients:
        """Empty the emulator and provision every resource (and the API key) again."""
        for url in self.emulator_urls:
            request = urllib.request.Request(f"{url}/moto-api/reset", method="POST")
            # the benchmark's own emulator on loopback
            with urllib.request.urlopen(request, timeout=30) as resp:  # nosec B310
                resp.read()
        settings = self.settings()
        clients = AwsClients(settings)
        provision(settings, clients)
        return clients

    def capacity_reset(self) -> None:
        for url in self.emulator_urls:
            http_json("DELETE", f"{url}/_capacity")

    def capacity_read(self, top: int = 5) -> dict[str, Any]:
        """Both emulators' meters as one report: DynamoDB from one, SQS and SNS from the
        other (each only sees its own services)."""
        merged: dict[str, Any] = {"dynamodb": {"requests": {}, "tables": {}}, "sqs": {}, "sns": {}}
        for url in self.emulator_urls:
            part = http_json("GET", f"{url}/_capacity?top={top}")
            for op, n in part["dynamodb"]["requests"].items():
                merged["dynamodb"]["requests"][op] = merged["dynamodb"]["requests"].get(op, 0) + n
            merged["dynamodb"]["tables"].update(part["dynamodb"]["tables"])
            for service in ("sqs", "sns"):
                for action, counts in part[service].items():
                    into = merged[service].setdefault(action, {})
                    for name, n in counts.items():
                        into[name] = into.get(name, 0) + n
        return merged

    def sandbox_messages(self, provider: str | None = None) -> list[dict[str, Any]]:
        query = f"?provider={provider}" if provider else ""
        return list(http_json("GET", f"{self.sandbox_url}/sandbox/messages{query}"))

    def clear_sandbox(self) -> None:
        http_json("DELETE", f"{self.sandbox_url}/sandbox/messages")

    # --- Herald --------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.moto_url,
            **({"AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb_url} if self.dynamodb_url else {}),
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "HERALD_RESOURCE_PREFIX": PREFIX,
            "HERALD_BOOTSTRAP_API_KEY": API_KEY,
            "HERALD_SANDBOX": "true",
            "HERALD_SANDBOX_PORT": str(self.sandbox_port),
            # Explicit, so provider URLs in a developer's .env cannot send real messages.
            "HERALD_TWILIO_BASE_URL": self.sandbox_url,
            "HERALD_TWILIO_STATUS_CALLBACK_URL": f"{self.sandbox_url}/twilio/status",
            "HERALD_SENDGRID_HOST": self.sandbox_url,
            "HERALD_CHAT_WEBHOOK_BASE_URL": self.sandbox_url,
            # The bench offers more than the default per-key rate; it measures the API, not
            # the limiter (which still runs on every request).
            "HERALD_API_KEY_RATE_PER_SECOND": "100000",
            "HERALD_API_KEY_BURST": "100000",
            **PIPELINE_ENV,
        }

    def start_herald(
        self, phase: str, pipeline: bool = True, extra_env: Mapping[str, str] | None = None
    ) -> str:
        """The API (and with `pipeline` the router and a worker per channel); returns the
        API's base URL once it answers."""
        self.phase = phase
        calls = self.workdir / "calls"
        calls.mkdir(parents=True, exist_ok=True)
        port = free_port()
        commands: dict[str, list[str]] = {
            "api": ["-m", "uvicorn", "api.main:create_app", "--factory", "--port", str(port)],
        }
        if pipeline:
            commands["router"] = ["-m", "listeners.router"]
            for channel in CHANNELS:
                commands[f"worker-{channel}"] = ["-m", "listeners.worker", "--channel", channel]
        for name, args in commands.items():
            self.herald[name] = start_python(
                f"{phase}-{name}",
                args + (["--no-access-log"] if name == "api" else []),
                {**self.env(), **(extra_env or {})},
                self.logs,
                call_log=str(calls / f"{phase}-{name}"),
            )
        base = f"http://127.0.0.1:{port}"
        if not wait_until(lambda: http_ok(f"{base}/health"), timeout=60):
            raise RuntimeError(f"the API did not start; see {self.logs}")
        # Workers build their clients and find their queues before they long-poll.
        wait_until(lambda: all(p.calls() for p in self.herald.values()), timeout=30)
        return base

    def start_bare(self) -> tuple[Proc, str]:
        port = free_port()
        proc = start_python(
            "bare",
            ["-m", "uvicorn", "bench.bare_app:app", "--port", str(port), "--no-access-log"],
            {},
            self.logs,
        )
        base = f"http://127.0.0.1:{port}"
        if not wait_until(lambda: http_ok(f"{base}/health"), timeout=60):
            raise RuntimeError("the bare app did not start")
        return proc, base

    def snapshot(self, names: Iterable[str] | None = None) -> Snapshot:
        """CPU and AWS calls of Herald's processes, after the call logs have caught up."""
        time.sleep(CALL_LOG_FLUSH_SECONDS * 2 + 0.5)
        procs = {n: self.herald[n] for n in (names or self.herald)}
        return Snapshot(
            time.monotonic(),
            {n: p.cpu_seconds() for n, p in procs.items()},
            {n: p.calls() for n, p in procs.items()},
        )

    def stop_herald(self) -> dict[str, float]:
        """Stop this phase's processes; returns each one's peak RSS (MB) first."""
        peaks = {name: proc.peak_rss_mb() for name, proc in self.herald.items() if proc.alive()}
        for proc in self.herald.values():
            proc.popen.send_signal(signal.SIGTERM)
        for proc in self.herald.values():
            proc.stop()
        self.herald = {}
        return peaks

    def stop(self) -> None:
        for proc in list(self.herald.values()):
            proc.stop()
        self.herald = {}
        for service in (self.sandbox, *self.emulators):
            if service is not None:
                service.stop()
