"""Alerting tests: the API in-process, and a router driven by hand with a set clock, so
repeat intervals and silences are tested without waiting."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from api.main import create_app
from core.catalogue.models import EventRecord
from core.directory.profiles import ProfileFields
from core.directory.users import UserStore
from core.ledger.wiring import build_ledger
from listeners.batch import BatchSettler
from listeners.messages import QueueMessage
from listeners.router import Router
from tests.conftest import AUTH, Stack
from tests.support import free_port

PREFIX = "herald-test"
START = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def client(stack: Stack) -> Iterator[TestClient]:
    with TestClient(create_app(stack.settings, stack.clients), headers=AUTH) as test_client:
        yield test_client


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def router(stack: Stack, clock: Clock) -> Router:
    settings = stack.settings.model_copy(update={"alert_silence_cache_seconds": 0.0})
    return Router(settings, stack.clients, clock=clock)


def route_pending(stack: Stack, router: Router) -> None:
    """Route every message waiting on the router queues, as the router process would."""
    for lane in ("critical", "normal"):
        queue = f"{PREFIX}-events-{lane}"
        messages = [QueueMessage.from_sqs(queue, m) for m in stack.receive_all(queue)]
        if messages:
            results = router(messages)
            BatchSettler(stack.clients.sqs, stack.clients.queue_url).settle(messages, results)


def stored_event(stack: Stack, event_id: str) -> tuple[EventRecord, list[dict[str, Any]]]:
    found = build_ledger(stack.clients.dynamodb, stack.clients.names.table).event_reads.get(
        event_id
    )
    assert found is not None
    return found


def add_user(stack: Stack, user_id: str, **contacts: Any) -> None:
    UserStore(stack.clients.dynamodb, stack.clients.names.table).put_profile(
        user_id, ProfileFields(**contacts)
    )


def channel_messages(stack: Stack, channel: str) -> list[str]:
    """Bodies of every message on a channel's queues (both lanes), consumed."""
    bodies = []
    for lane in ("critical", "normal"):
        queue = f"{PREFIX}-{channel}-{lane}"
        raw = stack.receive_all(queue)
        url = stack.clients.queue_url(queue)
        for m in raw:
            stack.clients.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        bodies += [m["Body"] for m in raw]
    return bodies


# --- SQL servers -----------------------------------------------------------------------------


@dataclass
class Database:
    """A data source for rules: its name, URL, and a writer connection for the test."""

    name: str
    url: str

    def execute(self, *statements: str) -> None:
        engine = create_engine(self.url)
        try:
            with engine.begin() as conn:
                for statement in statements:
                    conn.execute(text(statement))
        finally:
            engine.dispose()


DISTRIBUTION_PG = Path("/usr/lib/postgresql")


def _pg_bin() -> Path:
    """The PostgreSQL binaries the tests run: the distribution's package where installed
    (the newest `/usr/lib/postgresql/*/bin`), else the `pgserver` package's (a dev
    dependency: PostgreSQL 16 in its wheel; only its binaries are used).
    HERALD_TEST_POSTGRES=package picks the package's even beside the distribution's."""
    choice = os.environ.get("HERALD_TEST_POSTGRES", "")
    if choice not in ("", "package"):
        pytest.fail(f"HERALD_TEST_POSTGRES={choice!r}: only 'package' is known", pytrace=False)
    if choice != "package":
        found = sorted(
            DISTRIBUTION_PG.glob("*/bin/initdb"),
            key=lambda p: [int(n) for n in re.findall(r"\d+", p.parts[-3])],
        )
        if found:
            return found[-1].parent
    spec = importlib.util.find_spec("pgserver")  # finds it without importing it
    if spec is not None and spec.origin is not None:
        bindir = Path(spec.origin).parent / "pginstall" / "bin"
        if (bindir / "initdb").is_file():
            return bindir
    pytest.fail(
        "no PostgreSQL for the alerting tests: install the dev extras "
        "(pip install -e '.[dev]', which brings pgserver==0.1.4)"
        + ("" if choice else " or the distribution's package (apt-get install postgresql)"),
        pytrace=False,
    )


def _pg_user() -> str:
    """An unprivileged user on any Debian/Ubuntu, to run the server as (initdb refuses root)."""
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "nobody"
    return "postgres"


def _pg_copy(bindir: Path, into: Path) -> Path:
    """The package's binaries copied where another user can run them (the venv's parents may
    be mode 700), readable and executable by all; the copy's bin/. Keeps the layout they find
    each other by: bin/, lib/ and share/ side by side in pginstall/, and the wheel's bundled
    libpq in pgserver.libs/ (their RPATH is $ORIGIN/../../../pgserver.libs)."""
    pginstall = bindir.parent
    package = pginstall.parent
    shutil.copytree(pginstall, into / package.name / pginstall.name, symlinks=True)
    libs = package.parent / f"{package.name}.libs"
    if libs.is_dir():
        shutil.copytree(libs, into / libs.name, symlinks=True)
    for path in [into, *into.rglob("*")]:
        if not path.is_symlink():
            mode = path.stat().st_mode
            executable = path.is_dir() or mode & stat.S_IXUSR
            path.chmod(mode | stat.S_IROTH | (stat.S_IXOTH if executable else 0))
    return into / package.name / pginstall.name / bindir.name


class PostgresServer:
    """A PostgreSQL server of its own on a free loopback port (binaries: `_pg_bin`), which a
    test may stop and start again. As root it runs as an unprivileged user, since initdb
    refuses root."""

    def __init__(self) -> None:
        self.bindir = _pg_bin()
        # Not under pytest's temporary tree: the server's user must be able to reach it.
        self.root = Path(tempfile.mkdtemp(prefix="herald-pg-"))
        self.data = self.root / "data"
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            user = _pg_user()
            self.as_user = ["runuser", "-u", user, "--"]
            shutil.chown(self.root, user)
            if not self.bindir.is_relative_to(DISTRIBUTION_PG):
                self.bindir = _pg_copy(self.bindir, self.root / "install")
        self.port = free_port()
        self.url = f"postgresql+psycopg://herald@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True) -> None:
        # cwd: the user may not be able to reach the caller's (a clone under a 700 directory)
        done = subprocess.run([*self.as_user, *args], capture_output=True, text=True, cwd=self.root)
        if check and done.returncode != 0:
            log = self.root / "pg.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            pytest.fail(f"{' '.join(args)}: {done.stderr}{done.stdout}{tail}", pytrace=False)

    def init(self) -> PostgresServer:
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "herald")
        return self

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off"
        pg_ctl = str(self.bindir / "pg_ctl")
        self._run(
            pg_ctl, "-D", str(self.data), "-o", options, "-w", "-l", f"{self.root}/pg.log", "start"
        )

    def stop(self, check: bool = True) -> None:
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop", check=check
        )

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        server.init().start()
        try:
            yield server
        finally:
            server.stop(check=False)
    finally:
        server.remove()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server for the session (`PostgresServer`)."""
    with postgres_server() as server:
        yield server.url


@contextlib.contextmanager
def _fresh_postgres(base: str) -> Iterator[Database]:
    """A new database on the session's PostgreSQL server, dropped afterwards."""
    schema = f"t{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {schema}"))
    try:
        yield Database("warehouse", base.rsplit("/", 1)[0] + f"/{schema}")
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE {schema} WITH (FORCE)"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A fresh database of each kind, named `warehouse`."""
    if request.param == "sqlite":
        yield Database("warehouse", f"sqlite:///{tmp_path / 'warehouse.db'}")
        return
    with _fresh_postgres(request.getfixturevalue("postgres_url")) as db:
        yield db


@pytest.fixture
def pg_database(postgres_url: str) -> Iterator[Database]:
    """A fresh PostgreSQL database, named `warehouse`."""
    with _fresh_postgres(postgres_url) as db:
        yield db


# --- the whole alerting pipeline, in-process, one step at a time ---------------------------


def _consume(stack: Stack, queue: str, handler: Any) -> int:
    messages = [QueueMessage.from_sqs(queue, m) for m in stack.receive_all(queue)]
    if messages:
        results = handler(messages)
        BatchSettler(stack.clients.sqs, stack.clients.queue_url).settle(messages, results)
    return len(messages)


class Pipeline:
    """Scheduler → rules queue → evaluator → SNS → router → email/chat queues → the
    workers' handlers → the provider sandbox, each step run by `tick` under a set clock."""

    def __init__(self, stack: Stack, sandbox: Any, clock: Clock, datasources: dict[str, str]):
        from alerting.evaluator import Evaluator
        from alerting.scheduler import Scheduler
        from listeners.worker import build_worker

        self.stack = stack
        self.clock = clock
        self.settings = stack.settings.model_copy(
            update={
                "datasources": json.dumps(datasources),
                "sendgrid_host": sandbox.url,
                "sendgrid_api_key": "SG.test-key",
                "twilio_base_url": sandbox.url,
                "chat_webhook_base_url": sandbox.url,
                "alert_silence_cache_seconds": 0.0,
            }
        )
        self.scheduler = Scheduler(self.settings, stack.clients, owner="s1", clock=clock)
        self.evaluator = Evaluator(self.settings, stack.clients, clock=clock)
        self.router = Router(self.settings, stack.clients, clock=clock)
        self.workers = {
            channel: build_worker(self.settings, stack.clients, channel)[1]
            for channel in ("email", "chat")
        }

    def evaluate_pending(self) -> int:
        return sum(
            _consume(self.stack, f"{PREFIX}-rules-{lane}", self.evaluator)
            for lane in ("critical", "normal")
        )

    def deliver_pending(self) -> None:
        for channel, handler in self.workers.items():
            for lane in ("critical", "normal"):
                _consume(self.stack, f"{PREFIX}-{channel}-{lane}", handler)

    def tick(self, minutes: float = 1) -> int:
        """Advance the clock, schedule, evaluate, route and deliver; runs evaluated."""
        self.clock.advance(minutes=minutes)
        self.scheduler.run_pass()
        runs = self.evaluate_pending()
        route_pending(self.stack, self.router)
        self.deliver_pending()
        return runs

    def close(self) -> None:
        for handler in self.workers.values():
            handler.close()
