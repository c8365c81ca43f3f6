"""The README's quick start, run as documented against the real processes: its curl
blocks (with this stack's ports and key), the push example ending SENT, and the `herald`
command from a second terminal finding the stack through var/local.env."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import TEST_API_KEY
from tests.e2e.conftest import PREFIX, Herald
from tests.support import ROOT

README = (ROOT / "README.md").read_text()
DEV_KEY = "hk_dev_local-development-key"


def bash_block_after(marker: str) -> str:
    """The first ```bash block after `marker` in the README."""
    found = re.search(re.escape(marker) + r".*?```bash\n(.*?)```", README, re.S)
    assert found, f"README has no bash block after {marker!r}"
    return found.group(1)


def run_as_documented(herald: Herald, block: str) -> list[Any]:
    """Run a README block with this stack's addresses; every JSON answer, in order. A line
    that needs a value from an earlier answer (`<event_id>`) is left out."""
    api = str(herald.api.base_url).rstrip("/").removeprefix("http://")
    script = (
        block.replace("localhost:8000", api)
        .replace("localhost:8025", f"127.0.0.1:{herald.sandbox.port}")
        .replace(DEV_KEY, TEST_API_KEY)
    )
    runnable = "\n".join(line for line in script.splitlines() if "<event_id>" not in line)
    out = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", runnable.replace("curl -s", "curl -sS -w '\\n'")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def test_the_quick_start_curl_sequence_delivers(herald: Herald) -> None:
    answers = run_as_documented(herald, bash_block_after("Try it, with `make run`"))
    accepted = [a for a in answers if isinstance(a, dict) and a.get("status") == "START"]
    assert len(accepted) == 1, answers
    event = herald.wait_for_event(accepted[0]["event_id"], {"SUCCESS", "FAILED"})
    assert event["status"] == "SUCCESS", event
    assert {n["channel"]: n["status"] for n in event["notifications"]} == {
        "sms": "SENT",
        "email": "SENT",
    }


def test_the_push_example_ends_sent(herald: Herald) -> None:
    # The same terminal as the quick start: $KEY is still set.
    key = f"KEY='X-API-Key: {DEV_KEY}'\n"
    answers = run_as_documented(herald, key + bash_block_after("Push: users register"))
    user = answers[0]
    assert len(user["push_endpoints"]) == 1 and user["devices"][0]["platform"] == "fcm"
    event_id = answers[-1]["event_id"]
    notification = herald.wait_for_notification(event_id, "push", {"SENT", "FAILED"})
    assert notification["status"] == "SENT", notification


def test_the_herald_command_works_from_a_second_terminal(herald: Herald, tmp_path: Path) -> None:
    local_env = tmp_path / "var" / "local.env"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "HERALD_"))}
    endpoints = {
        "AWS_ENDPOINT_URL": str(herald.settings.aws_endpoint_url),
        "AWS_ENDPOINT_URL_DYNAMODB": str(herald.settings.aws_endpoint_url_dynamodb),
    }
    subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "local-env", f"LOCAL_ENV={local_env}"],
        env={**env, **endpoints},
        check=True,
        capture_output=True,
    )
    # Both endpoints: the API keys below live in the DynamoDB emulator only.
    assert {f"{k}={v}" for k, v in endpoints.items()} <= set(local_env.read_text().splitlines())
    with local_env.open("a") as file:
        file.write(f"HERALD_RESOURCE_PREFIX={PREFIX}\n")
    terminal = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    herald_cli = str(Path(sys.executable).with_name("herald"))
    listed = subprocess.run(
        [herald_cli, "dlq", "list"], cwd=tmp_path, env=terminal, capture_output=True, text=True
    )
    assert listed.returncode == 0, listed.stderr
    assert {d["queue"] for d in json.loads(listed.stdout)} >= {"sms-normal", "push-normal"}
    assert f"AWS endpoint {herald.settings.aws_endpoint_url}" in listed.stderr
    created = subprocess.run(
        [herald_cli, "keys", "create", "--name", "billing", "--scope", "events:write,events:read"],
        cwd=tmp_path,
        env=terminal,
        capture_output=True,
        text=True,
    )
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["scopes"] == ["events:write", "events:read"]
