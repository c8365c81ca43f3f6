"""No contact detail or provider credential in any log line of the API, the router, the
reconciler or the workers, nor in what the API answers; masked forms where a log or an error
has to name a recipient.

Runs the real processes (the supervisord stack of the chaos suite) with two users whose
contacts are known: one whose deliveries succeed, and one whose every address is refused,
so the providers' errors quote the address. The emulator's and the sandbox's own logs are
left out: they stand in for AWS and the providers, which see the addresses by design.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from core.platform.masking import mask_address, mask_text
from tests.chaos.harness import API_KEY, CREDENTIALS, ChaosStack
from tests.chaos.workload import COMMENT_DATA, api_client
from tests.support import wait_until

HERALD_PROGRAMS = (
    "api",
    "router",
    "reconciler",
    "worker-sms",
    "worker-whatsapp",
    "worker-email",
    "worker-push",
    "worker-chat",
)
CHANNELS = ["sms", "whatsapp", "email", "push", "chat"]
INVALID_NUMBER = "+15005550001"  # the sandbox answers Twilio's 21211, quoting the number


def push_endpoints(stack: ChaosStack) -> tuple[str, str, str]:
    """A live endpoint, one deleted (SNS: NotFound) and the live one's device token."""
    sns = stack.clients().sns
    app = sns.create_platform_application(
        Name="herald-privacy", Platform="GCM", Attributes={"PlatformCredential": "fcm-key"}
    )["PlatformApplicationArn"]
    token = "device-token-privacy-7c1f"
    live = sns.create_platform_endpoint(PlatformApplicationArn=app, Token=token)["EndpointArn"]
    gone = sns.create_platform_endpoint(PlatformApplicationArn=app, Token="device-token-gone")[
        "EndpointArn"
    ]
    sns.delete_endpoint(EndpointArn=gone)
    return live, gone, token


def put_user(api: httpx.Client, user_id: str, contacts: dict[str, Any]) -> None:
    api.put(f"/users/{user_id}", json={**contacts, "timezone": "UTC"}).raise_for_status()
    api.put(
        f"/users/{user_id}/preferences", json={"categories": {"activity": CHANNELS}}
    ).raise_for_status()


def settled(api: httpx.Client, event_id: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def done() -> bool:
        found.update(api.get(f"/events/{event_id}").json())
        return found.get("status") in ("SUCCESS", "FAILED")

    assert wait_until(done, timeout=90, interval=0.5), found
    return found


def log_lines(stack: ChaosStack) -> list[tuple[Path, str]]:
    files = stack.log_files(HERALD_PROGRAMS)
    assert {f.stem.rsplit("-", 1)[0] for f in files} >= {"api", "router", "worker-sms"}
    return [(f, line) for f in files for line in f.read_text(errors="replace").splitlines()]


def test_logs_and_answers_never_show_contacts_or_credentials(chaos: ChaosStack) -> None:
    live_arn, gone_arn, device_token = push_endpoints(chaos)
    chat_url = "https://hooks.slack.com/services/TPRIV/BPRIV/privacy-webhook-secret"
    ok: dict[str, Any] = {
        "phone": "+14155550188",
        "whatsapp": "+14155550177",
        "email": "privacy.ok@example.com",
        "push_endpoints": [live_arn],
        "chat": {"format": "slack", "url": chat_url},
    }
    refused: dict[str, Any] = {
        "phone": INVALID_NUMBER,
        "whatsapp": INVALID_NUMBER,
        "email": "privacy.refused@invalid.example",
        "push_endpoints": [gone_arn],
        "chat": {"format": "slack", "url": chat_url},
    }
    with api_client(chaos.api_url) as api:
        put_user(api, "privacy-ok", ok)
        put_user(api, "privacy-refused", refused)
        events = {}
        for user in ("privacy-ok", "privacy-refused"):
            resp = api.post(
                "/events", json={"type": "comment", "user_id": user, "data": COMMENT_DATA}
            )
            assert resp.status_code == 202, resp.text
            events[user] = resp.json()["event_id"]
        delivered = settled(api, events["privacy-ok"])
        failed = settled(api, events["privacy-refused"])
        answers = {
            "event": delivered,
            "failed event": failed,
            "dead letters": [
                api.get(f"/dlq/{channel}-normal/messages", params={"limit": 100}).json()
                for channel in CHANNELS
            ],
            "openapi": api.get("/openapi.json").json(),
        }
    assert delivered["status"] == "SUCCESS", delivered
    assert failed["status"] == "FAILED", failed

    contacts: list[str] = [
        ok["phone"],
        ok["whatsapp"],
        ok["email"],
        INVALID_NUMBER,
        refused["email"],
        live_arn.rsplit("/", 1)[1],  # the endpoint id names the device
        gone_arn.rsplit("/", 1)[1],
        device_token,
        "privacy-webhook-secret",
    ]
    secrets = [*CREDENTIALS.values(), API_KEY]
    lines = log_lines(chaos)
    for value in contacts + secrets:
        leaks = [f"{path.name}: {line}" for path, line in lines if value in line]
        assert leaks == [], f"{value!r} in logs"
    for name, answer in answers.items():
        text = json.dumps(answer)
        for value in contacts + secrets:
            assert value not in text, f"{value!r} in the {name}"

    # Where a log line or an error has to name the refused recipient, it does so masked.
    masked_number = mask_text(INVALID_NUMBER)
    masked_gone = mask_address(gone_arn)
    by_channel = {n["channel"]: n for n in failed["notifications"]}
    for channel, masked in (
        ("sms", masked_number),
        ("whatsapp", masked_number),
        ("push", masked_gone),
    ):
        notification = by_channel[channel]
        assert notification["status"] == "FAILED"
        assert masked in notification["last_error"], notification
        naming = [
            line
            for path, line in lines
            if path.stem.startswith(f"worker-{channel}")
            and notification["notification_id"] in line
            and masked in line
        ]
        assert naming, f"no {channel} log line names the recipient masked"
    assert by_channel["sms"]["recipient"] == mask_address(INVALID_NUMBER)
    assert by_channel["push"]["recipient"] == masked_gone
