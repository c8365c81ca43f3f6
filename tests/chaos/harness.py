"""The whole process stack under supervisord, for fault injection.

`ChaosStack` writes a supervisord config into a temporary folder, modelled on the project's
`supervisord.conf` (emulator, sandbox, provisioning, API, router, reconciler, one worker
program per channel, and the alert rules' scheduler, evaluator and listener, all with
`autorestart=true`), starts supervisord in the foreground and
drives it over its XML-RPC socket: a test can ask for a program's pid, `kill -9` it and
wait for supervisord to bring it back, or freeze the emulator with SIGSTOP.

Every program logs to its own file in the folder, so a test can read what each process wrote.

Every scenario ends with `herald audit` over the events it made (`audit_scenario`, run by
tests/chaos/conftest.py after the test body, whatever scenario it is): each event's status,
tally and records must agree with each other and with what the sandbox accepted. The
result is the chaos table's `audit` column; a disagreement fails the scenario.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import xmlrpc.client
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from supervisor.xmlrpc import SupervisorTransport

from cli.audit import run_audit
from core.aws.clients import AwsClients
from core.catalogue.event_types import CHANNELS
from core.operations.audit import AuditReport
from core.platform.settings import Settings
from core.timing.due_work import DueStore
from localstack.provision import provision
from tests.support import ROOT, free_port, http_ok, wait_until

PREFIX = "herald-chaos"
API_KEY = "hk_chaos_0123456789abcdef0123456789abcdef"
API_HEADERS = {"X-API-Key": API_KEY}
# Distinctive credentials, so a test can look for them in logs and answers. The emulator
# and the sandbox accept any.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "AKIACHAOSTESTKEY0001",
    "AWS_SECRET_ACCESS_KEY": "chaos-aws-secret-5f2a9c7e",
    "HERALD_TWILIO_AUTH_TOKEN": "chaos-twilio-token-81d4e2",
    "HERALD_SENDGRID_API_KEY": "SG.chaos-sendgrid-key-3b9f06",
}

# Short timings, so a lapsed lease, a retry or a redelivery happens within a test's patience.
PIPELINE_ENV = {
    "HERALD_WAIT_TIME_SECONDS": "1",
    "HERALD_VISIBILITY_TIMEOUT_SECONDS": "8",
    "HERALD_RETRY_BASE_SECONDS": "1",
    "HERALD_RETRY_CAP_SECONDS": "2",
    "HERALD_MAX_ATTEMPTS": "4",
    "HERALD_FANOUT_PAGE_SIZE": "10",
    "HERALD_RECONCILE_GRACE_SECONDS": "5",
    "HERALD_RECONCILE_INTERVAL_SECONDS": "2",
    "HERALD_RECONCILE_STRANDED_SECONDS": "20",
    "HERALD_OUTCOME_DEADLINE_SECONDS": "60",
    # Alert rules: a dead scheduler's shard and a dead listener's data source are taken
    # over within seconds, a hung data source answers an error within seconds.
    "HERALD_SCHEDULER_LEASE_SECONDS": "8",
    "HERALD_SQL_CONNECT_TIMEOUT_SECONDS": "2",
    "HERALD_SQL_STATEMENT_TIMEOUT_SECONDS": "3",
    "HERALD_LISTEN_LEASE_SECONDS": "6",
    "HERALD_LISTEN_RULES_REFRESH_SECONDS": "1",
    "HERALD_LISTEN_RECONNECT_MAX_SECONDS": "2",
    # Idle pauses of seconds, not a minute: each scenario starts on an emptied stack whose
    # due sender and rule scheduler have backed off to their longest pause, and work
    # written meanwhile (a deferred notification, a delayed event, a digest's window, a new
    # rule's first run) waited out that pause; a due item whose handler failed under the
    # faults is tried again within seconds too.
    "HERALD_DUE_IDLE_MAX_SECONDS": "4",
    "HERALD_DUE_RETRY_SECONDS": "2",
    "HERALD_SCHEDULER_IDLE_MAX_SECONDS": "4",
}
#: The alert rules' data sources, each a loopback port where a scenario puts a proxy in
#: front of its PostgreSQL server (`tests/chaos/tcp_proxy.py`); nothing listens there
#: otherwise, and no rule uses them outside that scenario.
DATASOURCES = ("steady", "hung", "dropping")


@dataclass(frozen=True)
class Program:
    """One supervisord program: `args` after `python`, `numprocs` copies."""

    name: str
    args: list[str]
    numprocs: int = 1
    priority: int = 30
    oneshot: bool = False


@dataclass
class Kill:
    """A `kill -9` the harness sent: which process, its pid, and when (epoch seconds)."""

    process: str
    pid: int
    at: float


def _quote(value: str) -> str:
    """A supervisord `environment=` value: quoted (single quotes around JSON, whose double
    quotes supervisord's parser does not take escaped), with `%` escaped."""
    value = value.replace("%", "%%")
    if '"' in value and "'" not in value:
        return "'" + value + "'"
    return '"' + value.replace('"', '\\"') + '"'


def render_config(
    folder: Path, programs: list[Program], environment: Mapping[str, str], python: str
) -> str:
    env = ",".join(f"{k}={_quote(v)}" for k, v in environment.items())
    lines = [
        "[supervisord]",
        f"logfile={folder}/supervisord.log",
        f"pidfile={folder}/supervisord.pid",
        f"childlogdir={folder}",
        f"directory={ROOT}",
        f"environment={env}",
        "",
        "[unix_http_server]",
        f"file={folder}/supervisor.sock",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
    ]
    for program in programs:
        command = " ".join([python, *program.args])
        lines += [f"[program:{program.name}]", f"command={command}", f"priority={program.priority}"]
        if program.numprocs > 1 or program.name.startswith(("worker-", "router")):
            lines += [
                "process_name=%(program_name)s-%(process_num)d",
                f"numprocs={program.numprocs}",
            ]
            log = f"{folder}/%(program_name)s-%(process_num)d.log"
        else:
            log = f"{folder}/{program.name}.log"
        if program.oneshot:
            lines += ["startsecs=0", "autorestart=unexpected", "exitcodes=0"]
        else:
            lines += ["startsecs=1", "startretries=30", "autorestart=true"]
        lines += [
            "stopsignal=TERM",
            "stopwaitsecs=10",
            "stopasgroup=true",
            "killasgroup=true",
            f"stdout_logfile={log}",
            "stdout_logfile_maxbytes=0",
            "redirect_stderr=true",
            "",
        ]
    return "\n".join(lines)


@dataclass
class ChaosStack:
    """A running stack; build it with `ChaosStack.start(folder)`, end it with `stop()`."""

    folder: Path
    emulator_port: int
    sandbox_port: int
    api_port: int
    settings: Settings
    faults_port: int = 0
    datasource_ports: dict[str, int] = field(default_factory=dict)
    supervisord: subprocess.Popen[bytes] | None = None
    kills: list[Kill] = field(default_factory=list)
    scenario_started: datetime = field(default_factory=lambda: datetime.now(UTC))

    # --- building ----------------------------------------------------------------------

    @classmethod
    def create(cls, folder: Path, workers: int = 1, routers: int = 1) -> ChaosStack:
        emulator_port, sandbox_port, api_port = free_port(), free_port(), free_port()
        timings: dict[str, Any] = {
            k.removeprefix("HERALD_").lower(): v for k, v in PIPELINE_ENV.items()
        }
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            AWS_ENDPOINT_URL=f"http://127.0.0.1:{emulator_port}",
            AWS_DEFAULT_REGION="us-east-1",
            AWS_ACCESS_KEY_ID=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            AWS_SECRET_ACCESS_KEY=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            twilio_auth_token=CREDENTIALS["HERALD_TWILIO_AUTH_TOKEN"],
            sendgrid_api_key=CREDENTIALS["HERALD_SENDGRID_API_KEY"],
            resource_prefix=PREFIX,
            bootstrap_api_key=API_KEY,
            sandbox_port=sandbox_port,
            **timings,
        )
        stack = cls(folder, emulator_port, sandbox_port, api_port, settings, free_port())
        stack.datasource_ports = {name: free_port() for name in DATASOURCES}
        programs = stack.programs(workers, routers)
        (folder / "supervisord.conf").write_text(
            render_config(folder, programs, stack.environment(), sys.executable)
        )
        return stack

    def environment(self) -> dict[str, str]:
        """Herald's processes reach the emulator through the fault proxy (no faults unless
        a scenario sets them); the harness's own clients go straight to the emulator."""
        return {
            "AWS_ENDPOINT_URL": self.faults_url,
            "AWS_DEFAULT_REGION": "us-east-1",
            **CREDENTIALS,
            "HERALD_RESOURCE_PREFIX": PREFIX,
            "HERALD_BOOTSTRAP_API_KEY": API_KEY,
            "HERALD_SANDBOX": "true",
            "HERALD_SANDBOX_PORT": str(self.sandbox_port),
            "PYTHONUNBUFFERED": "1",
            "HERALD_DATASOURCES": json.dumps(self.datasource_urls),
            **PIPELINE_ENV,
        }

    @property
    def datasource_urls(self) -> dict[str, str]:
        return {
            name: f"postgresql+psycopg://herald@127.0.0.1:{port}/postgres"
            for name, port in self.datasource_ports.items()
        }

    def programs(self, workers: int, routers: int) -> list[Program]:
        return [
            Program(
                "emulator", ["-m", "localstack.emulator", "--port", str(self.emulator_port)], 1, 10
            ),
            Program(
                "faults",
                [
                    "-m",
                    "localstack.faults",
                    "--upstream",
                    self.emulator_url,
                    "--port",
                    str(self.faults_port),
                    "--seed",
                    "7",
                    "--quiet",
                ],
                1,
                10,
            ),
            Program(
                "sandbox",
                ["-m", "localstack.sandbox", "--port", str(self.sandbox_port), "--quiet"],
                1,
                10,
            ),
            Program(
                "provision", ["-m", "localstack.provision", "--wait", "60"], 1, 20, oneshot=True
            ),
            Program(
                "api",
                [
                    "-m",
                    "uvicorn",
                    "api.main:create_app",
                    "--factory",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.api_port),
                    "--no-access-log",
                ],
            ),
            Program("router", ["-m", "listeners.router"], routers),
            Program("reconciler", ["-m", "listeners.reconciler"]),
            Program("due-sender", ["-m", "listeners.due_sender"]),
            Program("scheduler", ["-m", "alerting.scheduler"]),
            Program("evaluator", ["-m", "alerting.evaluator"]),
            Program("listener", ["-m", "alerting.listener"]),
            *[
                Program(f"worker-{c}", ["-m", "listeners.worker", "--channel", c], workers)
                for c in CHANNELS
            ],
        ]

    # --- running -----------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}"

    @property
    def emulator_url(self) -> str:
        return f"http://127.0.0.1:{self.emulator_port}"

    @property
    def faults_url(self) -> str:
        return f"http://127.0.0.1:{self.faults_port}"

    def set_faults(self, rules: list[dict[str, Any]]) -> Any:
        """AWS faults between Herald and the emulator, from now on (empty: none)."""
        if not rules:
            return _http("DELETE", f"{self.faults_url}/_faults")
        return _http("PUT", f"{self.faults_url}/_faults", {"rules": rules})

    def fault_stats(self) -> dict[str, int]:
        return dict(_http("GET", f"{self.faults_url}/_faults").get("stats", {}))

    def start(self, timeout: float = 90) -> ChaosStack:
        conf = self.folder / "supervisord.conf"
        out = open(self.folder / "supervisord.out", "wb")  # noqa: SIM115
        self.supervisord = subprocess.Popen(
            [str(Path(sys.executable).parent / "supervisord"), "-n", "-c", str(conf)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        ready = wait_until(
            lambda: http_ok(f"{self.api_url}/health") and self.all_running(),
            timeout=timeout,
            interval=0.5,
        )
        if not ready:
            states = self._states_or_error()
            self.stop()
            raise RuntimeError(f"chaos stack did not start: {states}\n{self.tail('api')}")
        return self

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.resume("emulator")
        if self.supervisord is not None and self.supervisord.poll() is None:
            self.supervisord.terminate()
            try:
                self.supervisord.wait(60)
            except subprocess.TimeoutExpired:
                self.supervisord.kill()
                self.supervisord.wait()

    def rpc(self) -> Any:
        transport = SupervisorTransport(None, None, f"unix://{self.folder}/supervisor.sock")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor

    def processes(self) -> list[dict[str, Any]]:
        return list(self.rpc().getAllProcessInfo())

    def all_running(self) -> bool:
        try:
            infos = self.processes()
        except (OSError, xmlrpc.client.Fault):
            return False
        for info in infos:
            if info["group"] == "provision":
                if info["statename"] != "EXITED" or info["exitstatus"] != 0:
                    return False
            elif info["statename"] != "RUNNING":
                return False
        return True

    def _states_or_error(self) -> Any:
        try:
            return {f"{p['group']}:{p['name']}": p["statename"] for p in self.processes()}
        except Exception as exc:
            return repr(exc)

    def names(self, group: str) -> list[str]:
        return [f"{p['group']}:{p['name']}" for p in self.processes() if p["group"] == group]

    def pid(self, process: str) -> int:
        return int(self.rpc().getProcessInfo(process)["pid"])

    def kill9(self, process: str, restart_timeout: float = 30) -> Kill:
        """`kill -9` one process and wait until supervisord has it running again."""
        pid = self.pid(process)
        kill = Kill(process, pid, time.time())
        os.kill(pid, signal.SIGKILL)
        self.kills.append(kill)

        def restarted() -> bool:
            info = self.rpc().getProcessInfo(process)
            return bool(info["statename"] == "RUNNING" and info["pid"] not in (0, pid))

        if not wait_until(restarted, timeout=restart_timeout, interval=0.1):
            raise AssertionError(f"supervisord did not restart {process}")
        return kill

    def pause(self, process: str) -> None:
        os.kill(self.pid(process), signal.SIGSTOP)

    def resume(self, process: str) -> None:
        os.kill(self.pid(process), signal.SIGCONT)

    @contextlib.contextmanager
    def paused(self, process: str) -> Iterator[None]:
        self.pause(process)
        try:
            yield
        finally:
            self.resume(process)

    def log_files(self, programs: tuple[str, ...] | None = None) -> list[Path]:
        """The programs' log files (all, or those of the named programs)."""
        files = sorted(self.folder.glob("*.log"))
        if programs is None:
            return files
        return [f for f in files if f.stem.rsplit("-", 1)[0] in programs or f.stem in programs]

    def tail(self, name: str, chars: int = 3000) -> str:
        path = self.folder / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    # --- the emulator and the sandbox --------------------------------------------------

    def clients(self) -> AwsClients:
        return AwsClients(self.settings)

    def reset(self) -> None:
        """Empty the emulator and the sandbox; provision again (the key included)."""
        self.set_faults([])
        _http("POST", f"{self.emulator_url}/moto-api/reset")
        clients = self.clients()
        provision(self.settings, clients)
        # The processes run on across the reset, and a scheduler of due work trusts the
        # cursor it made for up to a minute (core.timing.due_work.CURSOR_RECHECK): put back
        # the cursor an earlier scenario's work made, as a table that was never emptied has.
        DueStore(clients.dynamodb, clients.names.table, self.settings.due_shards).ensure_cursor()
        self.sandbox("DELETE", "/sandbox/faults")
        self.sandbox("DELETE", "/sandbox/messages")
        self.scenario_started = datetime.now(UTC) - timedelta(seconds=1)

    def sandbox(self, method: str, path: str, body: Any = None) -> Any:
        return _http(method, f"{self.sandbox_url}{path}", body)


# How long the audit may wait for the reconciler to finish what it is still setting right
# (its pass interval and grace are seconds here) before a disagreement counts.
AUDIT_PATIENCE_SECONDS = 45.0
# An event of the scenario still open this long after its last change is stuck: the
# scenario has waited for its queues to drain, and the reconciler passes every 2 s here.
AUDIT_STUCK_SECONDS = 120.0


def audit(stack: ChaosStack, patience: float = AUDIT_PATIENCE_SECONDS) -> AuditReport:
    """`herald audit` over this scenario's events against the sandbox, again every few
    seconds while it finds something, up to `patience`; the last report."""
    deadline = time.monotonic() + patience
    while True:
        report = run_audit(
            stack.settings,
            stack.scenario_started,
            datetime.now(UTC),
            stack.sandbox_url,
            moving_seconds=0,
            stuck_seconds=AUDIT_STUCK_SECONDS,
        )
        if report.clean or time.monotonic() >= deadline:
            return report
        time.sleep(3)


def audit_scenario(stack: ChaosStack, outcomes: Sequence[Any], strict: bool = True) -> None:
    """The audit at the end of a scenario: its summary onto the scenario's outcomes (the
    table's `audit` column) and the disagreements into their notes; with `strict`, an
    AssertionError listing them when it found any."""
    report = audit(stack)
    for outcome in outcomes:
        outcome.audit = report.summary()
        outcome.notes += [f"audit: {d.event_id}: {d.what}" for d in report.disagreements[:5]]
    if strict and not report.clean:
        raise AssertionError(
            f"herald audit: {report.summary()}\n"
            + "\n".join(f"{d.event_id}: {d.what}" for d in report.disagreements[:20])
        )


def _http(method: str, url: str, body: Any = None, timeout: float = 30) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None
