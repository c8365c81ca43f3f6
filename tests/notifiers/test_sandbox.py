"""The provider sandbox itself: recording, filters, faults and the control API."""

from __future__ import annotations

import json
import random
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from localstack.sandbox import Sandbox
from tests.support import free_port, http_ok, start_python, stop, wait_until


def call(
    url: str, method: str = "POST", body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode()


def slack(sandbox: Sandbox, n: int = 1) -> list[int]:
    return [call(f"{sandbox.url}/slack/hook", body={"text": str(i)})[0] for i in range(n)]


def test_count_fault_fails_the_next_n_requests_then_disappears(sandbox: Sandbox) -> None:
    sandbox.fail("slack", 503, count=2)
    assert slack(sandbox, 4) == [503, 503, 200, 200]
    assert [r["status"] for r in sandbox.messages("slack")] == [503, 503, 200, 200]
    assert [r["fault"] is not None for r in sandbox.messages("slack")] == [True, True, False, False]
    assert sandbox.state.faults() == []


def test_fault_for_one_provider_leaves_the_others_alone(sandbox: Sandbox) -> None:
    sandbox.fail("teams", 500)
    assert slack(sandbox) == [200]
    assert call(f"{sandbox.url}/teams/hook", body={})[0] == 500


def test_rate_fault_fails_the_fraction_its_seeded_generator_picks(sandbox: Sandbox) -> None:
    sandbox.fail("slack", 429, rate=0.3, seed=42, retry_after=1)
    rng = random.Random(42)
    expected = [429 if rng.random() < 0.3 else 200 for _ in range(40)]
    assert slack(sandbox, 40) == expected
    assert 0 < expected.count(429) < 40
    faulted = [r for r in sandbox.messages("slack") if r["status"] == 429]
    assert faulted and all(r["fault"]["retry_after"] == 1 for r in faulted)


def test_rate_zero_never_fires_and_clearing_removes_faults(sandbox: Sandbox) -> None:
    sandbox.fail("slack", 500, rate=0.0)
    assert slack(sandbox, 5) == [200] * 5
    sandbox.fail("slack", 500)
    assert slack(sandbox, 2) == [500, 500]
    sandbox.clear_faults()
    assert slack(sandbox, 2) == [200, 200]


def test_fault_responses_carry_retry_after_and_provider_shaped_bodies(sandbox: Sandbox) -> None:
    sandbox.fail("sendgrid", 429, count=1, retry_after=2)
    request = urllib.request.Request(
        f"{sandbox.url}/v3/mail/send",
        data=b"{}",
        method="POST",
        headers={"Authorization": "Bearer k"},
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 429
    assert caught.value.headers["Retry-After"] == "2"
    assert "errors" in json.loads(caught.value.read())


def test_control_api_adds_lists_and_clears_faults_and_messages(sandbox: Sandbox) -> None:
    status, created = call(
        f"{sandbox.url}/sandbox/faults", body={"provider": "twilio", "status": 500, "count": 1}
    )
    assert status == 201
    assert created[0]["provider"] == "twilio" and created[0]["count"] == 1
    assert call(f"{sandbox.url}/sandbox/faults", "GET")[1] == created
    assert call(f"{sandbox.url}/sandbox/faults", "DELETE")[0] == 204
    assert call(f"{sandbox.url}/sandbox/faults", "GET")[1] == []

    slack(sandbox)
    call(f"{sandbox.url}/teams/hook", body={"text": "x"})
    everything = call(f"{sandbox.url}/sandbox/messages", "GET")[1]
    assert [r["provider"] for r in everything] == ["slack", "teams"]
    only_teams = call(f"{sandbox.url}/sandbox/messages?provider=teams", "GET")[1]
    assert [r["path"] for r in only_teams] == ["/teams/hook"]
    assert only_teams[0]["json"] == {"text": "x"}
    assert isinstance(only_teams[0]["received_at"], float)
    assert call(f"{sandbox.url}/sandbox/messages", "DELETE")[0] == 204
    assert call(f"{sandbox.url}/sandbox/messages", "GET")[1] == []


@pytest.mark.parametrize(
    "spec",
    [
        {"provider": "smtp", "status": 500},
        {"provider": "twilio"},
        {"provider": "twilio", "status": 500, "rate": 2},
        {"provider": "twilio", "status": 500, "colour": "red"},
    ],
)
def test_invalid_fault_specs_are_refused(sandbox: Sandbox, spec: dict[str, Any]) -> None:
    status, body = call(f"{sandbox.url}/sandbox/faults", body=spec)
    assert status == 400
    assert body["error"]
    assert sandbox.state.faults() == []


def test_twilio_without_credentials_is_refused_like_twilio(sandbox: Sandbox) -> None:
    request = urllib.request.Request(
        f"{sandbox.url}/2010-04-01/Accounts/AC1/Messages.json",
        data=b"To=%2B14155550100&From=%2B15005550006&Body=hi",
        method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 401
    assert json.loads(caught.value.read())["code"] == 20003
    [recorded] = sandbox.messages("twilio")
    assert recorded["form"] == {"To": "+14155550100", "From": "+15005550006", "Body": "hi"}
    assert recorded["status"] == 401


def test_sandbox_runs_as_a_module(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "sandbox.log"
    proc = start_python(["-m", "localstack.sandbox", "--port", str(port)], log_path=log)
    try:
        url = f"http://127.0.0.1:{port}"
        assert wait_until(lambda: http_ok(f"{url}/sandbox/health"), timeout=10), log.read_text()
        assert call(f"{url}/teams/hook", body={"text": "hi"}) == (200, 1)
        assert [r["provider"] for r in call(f"{url}/sandbox/messages", "GET")[1]] == ["teams"]
    finally:
        stop(proc)
    assert proc.returncode == 0
