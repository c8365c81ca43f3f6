"""The `herald` command from another terminal: it finds the local stack's settings in
var/local.env (written the way `make run` writes it), says which endpoint it uses, and an
explicit environment still wins."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from cli import ports
from cli.stack_status import problems
from core.platform.local_stack import apply_local_env
from tests.conftest import Stack
from tests.support import ROOT

HERALD = Path(sys.executable).with_name("herald")


def write_local_env(folder: Path, stack: Stack, port_override: str | None = None) -> Path:
    """var/local.env as `make local-env` writes it, for this test's emulator."""
    target = folder / "var" / "local.env"
    endpoint = stack.endpoint
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": endpoint,
        "HERALD_RESOURCE_PREFIX": stack.settings.resource_prefix,
    }
    subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "local-env", f"LOCAL_ENV={target}"],
        env=env,
        check=True,
        capture_output=True,
    )
    return target


def herald(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`herald ARGS` in a terminal where nothing about the stack is exported."""
    clean = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), **env}
    return subprocess.run(
        [str(HERALD), *args], cwd=cwd, env=clean, capture_output=True, text=True, timeout=60
    )


def parsed(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_command_is_installed_with_the_package() -> None:
    assert HERALD.is_file()


def test_make_local_env_derives_the_endpoint_from_the_emulator_port(tmp_path: Path) -> None:
    target = tmp_path / "local.env"
    subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "local-env", f"LOCAL_ENV={target}"],
        env={k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "HERALD_"))}
        | {
            "HERALD_EMULATOR_PORT": "4999",
            "HERALD_EMULATOR_DYNAMODB_PORT": "4998",
            "AWS_ACCESS_KEY_ID": "AKIA-REAL",
        },
        check=True,
        capture_output=True,
    )
    lines = target.read_text().splitlines()
    assert "AWS_ENDPOINT_URL=http://127.0.0.1:4999" in lines
    assert "AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:4998" in lines
    assert "AWS_ACCESS_KEY_ID=testing" in lines  # the shell's real key is not written down
    assert not any("AKIA-REAL" in line for line in lines)


@pytest.mark.parametrize(
    "outside", [{"AWS_ENDPOINT_URL": "http://localstack:4566"}, {"HERALD_EMULATOR": "false"}]
)
def test_make_local_env_names_no_dynamodb_emulator_without_the_embedded_one(
    tmp_path: Path, outside: dict[str, str]
) -> None:
    """An endpoint from outside, or no embedded emulator: DynamoDB is wherever AWS is."""
    target = tmp_path / "local.env"
    subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "local-env", f"LOCAL_ENV={target}"],
        env={k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "HERALD_"))}
        | outside,
        check=True,
        capture_output=True,
    )
    lines = target.read_text().splitlines()
    assert any(line.startswith("AWS_ENDPOINT_URL=") for line in lines)
    assert not any(line.startswith("AWS_ENDPOINT_URL_DYNAMODB") for line in lines)


def test_the_files_endpoints_are_taken_together_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HERALD_LOCAL_ENV", raising=False)
    local_env = tmp_path / "var" / "local.env"
    local_env.parent.mkdir()
    local_env.write_text(
        "AWS_ENDPOINT_URL=http://127.0.0.1:4566\n"
        "AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:4567\n"
        "HERALD_API_PORT=8000\n"
    )
    quiet: dict[str, str] = {}
    assert apply_local_env(quiet, start=tmp_path) == local_env
    assert quiet["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4566"
    assert quiet["AWS_ENDPOINT_URL_DYNAMODB"] == "http://127.0.0.1:4567"

    localstack = {"AWS_ENDPOINT_URL": "http://ls:4566"}
    apply_local_env(localstack, start=tmp_path)
    assert localstack["AWS_ENDPOINT_URL"] == "http://ls:4566"
    assert "AWS_ENDPOINT_URL_DYNAMODB" not in localstack
    assert localstack["HERALD_API_PORT"] == "8000"  # the rest of the file still applies


def test_dlq_list_from_another_terminal_finds_the_stack(stack: Stack, tmp_path: Path) -> None:
    write_local_env(tmp_path, stack)
    nested = tmp_path / "somewhere" / "deeper"
    nested.mkdir(parents=True)
    # Credentials for real AWS in this shell must not send the tool to real AWS.
    result = herald(nested, "dlq", "list", AWS_ACCESS_KEY_ID="AKIA-REAL", AWS_SECRET_ACCESS_KEY="x")
    depths = {d["queue"]: d["depth"] for d in parsed(result)}
    assert depths["sms-normal"] == 0
    assert f"AWS endpoint {stack.endpoint}" in result.stderr
    assert str(tmp_path / "var" / "local.env") in result.stderr


def test_keys_and_events_through_the_one_command(stack: Stack, tmp_path: Path) -> None:
    from core.catalogue.event_types import EVENT_TYPES
    from core.catalogue.models import Event, iso, utcnow
    from tests.factories import ledger_of, record

    write_local_env(tmp_path, stack)
    created = parsed(
        herald(tmp_path, "keys", "create", "--name", "ci", "--scope", "events:write,events:read")
    )
    assert created["scopes"] == ["events:write", "events:read"]
    assert created["key_id"] in [k["key_id"] for k in parsed(herald(tmp_path, "keys", "list"))]

    spec = EVENT_TYPES["follow"]
    event = Event(
        event_id="cli-event-1",
        type="follow",
        category=spec.category,
        priority=spec.priority,
        user_id="u-1",
        data={"actor": "Ana"},
        created_at=iso(utcnow()),
    )
    record(ledger_of(stack), event)
    got = parsed(herald(tmp_path, "events", "get", "cli-event-1"))
    assert got["event_id"] == "cli-event-1" and got["status"] == "START"
    missing = herald(tmp_path, "events", "get", "no-such-event")
    assert missing.returncode == 1 and "no event 'no-such-event'" in missing.stderr


def test_an_explicit_endpoint_wins_over_the_file(stack: Stack, tmp_path: Path) -> None:
    write_local_env(tmp_path, stack)
    result = herald(tmp_path, "where", AWS_ENDPOINT_URL="http://127.0.0.1:9")
    assert parsed(result)["aws_endpoint_url"] == "http://127.0.0.1:9"
    assert "AWS endpoint http://127.0.0.1:9" in result.stderr


def test_without_a_stack_it_says_it_would_use_real_aws(tmp_path: Path) -> None:
    result = herald(tmp_path, "where", HERALD_LOCAL_ENV=str(tmp_path / "none.env"))
    assert parsed(result)["aws_endpoint_url"] is None
    assert "real AWS" in result.stderr and "no var/local.env" in result.stderr


def test_busy_ports_are_named(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        taken = listener.getsockname()[1]
        with socket.socket() as spare:
            spare.bind(("127.0.0.1", 0))
            free = spare.getsockname()[1]
        assert ports.main(["127.0.0.1", f"{taken}:api", f"{free}:sandbox"]) == 1
    message = capsys.readouterr().err
    assert f"127.0.0.1:{taken} (api) already in use" in message
    assert str(free) not in message
    assert ports.main(["127.0.0.1", f"{free}:sandbox"]) == 0


def test_wait_returns_once_every_port_listens() -> None:
    with socket.socket() as early, socket.socket() as late:
        early.bind(("127.0.0.1", 0))
        early.listen()
        late.bind(("127.0.0.1", 0))
        opens = threading.Timer(0.3, late.listen)
        opens.start()
        try:
            specs = [f"{s.getsockname()[1]}:{name}" for s, name in ((early, "a"), (late, "b"))]
            assert ports.main(["--wait", "30", "127.0.0.1", *specs]) == 0
        finally:
            opens.join()


def test_wait_names_the_ports_that_never_open(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        closed = spare.getsockname()[1]
        assert ports.main(["--wait", "0", "127.0.0.1", f"{closed}:emulator-dynamodb"]) == 1
    assert f"127.0.0.1:{closed} (emulator-dynamodb)" in capsys.readouterr().err


HEALTHY = """\
api                              RUNNING   pid 11, uptime 0:01:02
emulator                         RUNNING   pid 9, uptime 0:01:03
provision                        EXITED    Dec 02 06:00 AM
sandbox                          STOPPED   Not started
worker:worker-sms_00             RUNNING   pid 14, uptime 0:01:01
"""


def test_status_is_healthy_with_provision_exited_and_unhealthy_otherwise() -> None:
    assert problems(HEALTHY) == []
    crashed = HEALTHY.replace("api                              RUNNING   pid 11", "api BACKOFF")
    assert problems(crashed) == ["api BACKOFF, uptime 0:01:02"]
    assert problems("") == ["supervisord did not answer (is `make run` running?)"]
    gone = "unix:///x/var/supervisor.sock no such file"
    assert problems(gone) == [gone]
