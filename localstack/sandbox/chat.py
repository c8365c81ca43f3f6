"""The fake chat webhooks: `POST /slack/<anything>` -> 200 "ok", `POST /teams/<anything>`
-> 200 "1", as Slack's incoming webhooks and Teams' connectors answer.

A request's notification id is its `X-Herald-Notification-Id` header (which the sandbox
honours for every provider).
"""

from __future__ import annotations

from localstack.sandbox.reply import Reply

NAMES = ("slack", "teams")


def provider(path: str) -> str | None:
    """`slack` or `teams` for a path under /slack/ or /teams/."""
    for name in NAMES:
        if path.startswith(f"/{name}/"):
            return name
    return None


def reply(provider: str) -> Reply:
    return Reply.text(200, "ok" if provider == "slack" else "1")


def fault_reply(status: int, message: str) -> Reply:
    return Reply.text(status, "rate_limited" if status == 429 else message)
