"""herald audit: do the events of a time range agree with their records, their tallies and
what the providers received? (`core.operations.audit` says what is checked.)

    herald audit --since 1h                       the last hour, against the stack's sandbox
    herald audit --since 2026-12-07T06:00:00Z --until 2026-12-07T07:00:00Z --json
    herald audit --since 1d --no-provider         Herald's own accounts only

Exit status 0 when clean, 1 when anything disagrees (each disagreement on a line: the event
id, then what disagrees), 2 for bad arguments. The provider's side is the sandbox's list of
the messages it received (`GET /sandbox/messages`), so it is checked where a sandbox stands
in for the providers; `--sandbox URL` names one, and a stack in sandbox mode uses its own.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from core.operations.audit import MAX_EVENTS, AuditReport, ProviderMessage

SANDBOX_TIMEOUT_SECONDS = 30


def stuck_after(settings: Any) -> float:
    """How long an open event may go unchanged before it is stuck rather than slow: past
    the reconciler's last repair (each waits twice the one before, from the stranded
    period) and its last republish (likewise from the grace)."""
    repairs = settings.reconcile_stranded_seconds * 2 ** min(settings.reconcile_max_repairs + 1, 7)
    publishes = settings.reconcile_grace_seconds * 2 ** min(settings.reconcile_max_publishes + 1, 7)
    return float(max(repairs, publishes))


def when(value: str, now: datetime | None = None) -> datetime:
    """An ISO time (UTC unless it says), or a duration back from now (`90s`, `15m`, `2h`,
    `1d`)."""
    from alerting.durations import parse_duration

    now = now or datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            return now - timedelta(seconds=parse_duration(value))
        except ValueError as exc:
            raise argparse.ArgumentTypeError(
                f"{value!r} is neither an ISO time nor a duration such as 1h"
            ) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def sandbox_messages(url: str) -> list[ProviderMessage]:
    """Every message the sandbox received that names its notification; accepted when it
    answered 2xx (a request still waiting for its answer is not)."""
    resp = httpx.get(f"{url.rstrip('/')}/sandbox/messages", timeout=SANDBOX_TIMEOUT_SECONDS)
    resp.raise_for_status()
    entries: list[dict[str, Any]] = resp.json() if resp.content else []
    return [
        ProviderMessage(
            notification_id=str(e["notification_id"]),
            provider=str(e.get("provider") or ""),
            accepted=isinstance(e.get("status"), int) and 200 <= e["status"] < 300,
        )
        for e in entries
        if e.get("notification_id")
    ]


def run_audit(
    settings: Any,
    since: datetime,
    until: datetime,
    sandbox_url: str | None,
    moving_seconds: float,
    max_events: int = MAX_EVENTS,
    stuck_seconds: float | None = None,
) -> AuditReport:
    """One audit of the stack `settings` names (the chaos harness calls this too)."""
    from core.aws.clients import AwsClients
    from core.ledger.wiring import build_ledger
    from core.operations.audit import Auditor

    clients = AwsClients(settings)
    table = clients.names.table
    reads = build_ledger(clients.dynamodb, table, settings.event_retention_days).event_reads
    messages = sandbox_messages(sandbox_url) if sandbox_url else None
    return Auditor(clients.dynamodb, table, reads).run(
        since,
        until,
        messages,
        moving_seconds=moving_seconds,
        stuck_seconds=stuck_seconds,
        max_events=max_events,
    )


def main(argv: list[str]) -> int:
    from core.platform.settings import Settings

    parser = argparse.ArgumentParser(prog="herald audit", description=__doc__.split("\n")[0])
    parser.add_argument("--since", type=when, required=True, help="ISO time or duration ago")
    parser.add_argument("--until", type=when, help="ISO time or duration ago (default: now)")
    parser.add_argument("--sandbox", metavar="URL", help="the provider sandbox to check against")
    parser.add_argument(
        "--no-provider", action="store_true", help="skip the providers' side, even in sandbox mode"
    )
    parser.add_argument(
        "--moving-seconds",
        type=float,
        help="leave alone open events touched this recently (default: the reconciler's grace)",
    )
    parser.add_argument(
        "--stuck-seconds",
        type=float,
        help="an open event unchanged this long is stuck (default: past the reconciler's "
        "last repair)",
    )
    parser.add_argument("--max-events", type=int, default=MAX_EVENTS)
    parser.add_argument("--json", action="store_true", help="the whole report as JSON")
    args = parser.parse_args(argv)
    settings = Settings()
    until = args.until or datetime.now(UTC)
    if args.since > until:
        parser.error("--since is after --until")
    sandbox = args.sandbox
    if sandbox is None and settings.sandbox:
        sandbox = f"http://127.0.0.1:{settings.sandbox_port}"
    moving = args.moving_seconds
    try:
        report = run_audit(
            settings,
            args.since,
            until,
            None if args.no_provider else sandbox,
            settings.reconcile_grace_seconds if moving is None else moving,
            args.max_events,
            stuck_after(settings) if args.stuck_seconds is None else args.stuck_seconds,
        )
    except httpx.HTTPError as exc:  # the sandbox is not where the settings say
        print(
            f"cannot read the sandbox at {sandbox}: {exc}; --no-provider skips it",
            file=sys.stderr,
        )
        return 2
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        for item in report.disagreements:
            print(f"{item.event_id}\t{item.what}")
        print(report.summary(), file=sys.stderr)
    return 0 if report.clean else 1
