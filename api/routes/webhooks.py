"""Provider delivery receipts. Authenticated by the provider's signature, nothing else.

A request whose signature does not verify is a 403 and changes nothing. A receipt moves a
SENT notification to DELIVERED, UNDELIVERED or BOUNCED; the event's tally is not changed
(the provider took the message, which is what SENT counts). A receipt is applied once: a
replay of it (same SendGrid `sg_event_id`, same Twilio `MessageSid` and status) is a 200
that changes nothing (`core.ledger.receipts`). A receipt that finds its notification still
before SENT (the worker is writing the outcome) is a 503 with Retry-After that applies and
remembers nothing, so the provider posts it again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from sendgrid.helpers.eventwebhook import EventWebhook
from starlette.concurrency import run_in_threadpool
from twilio.request_validator import RequestValidator

from api.deps import ServicesDep
from core.catalogue.models import NotificationStatus, parse_notification_id
from core.ledger.receipts import Outcome, ReceiptLedger

log = logging.getLogger("herald.api.webhooks")
router = APIRouter(prefix="/webhooks", tags=["provider webhooks"])

TWILIO_STATUSES = {
    "delivered": NotificationStatus.DELIVERED,
    "undelivered": NotificationStatus.UNDELIVERED,
    "failed": NotificationStatus.UNDELIVERED,
}
SENDGRID_EVENTS = {
    "delivered": NotificationStatus.DELIVERED,
    "bounce": NotificationStatus.BOUNCED,
    "dropped": NotificationStatus.UNDELIVERED,
}
# SendGrid signs the timestamp too; an old one is a replay.
SENDGRID_MAX_AGE_SECONDS = 600
# A SendGrid post verifies from SENDGRID_MAX_AGE_SECONDS before its timestamp to as long
# after, so its ids are kept that long from first sight (and a little more).
SENDGRID_KEEP_SECONDS = 2 * SENDGRID_MAX_AGE_SECONDS + 60
DAY_SECONDS = 86_400


async def get_ledger(services: ServicesDep) -> ReceiptLedger:
    return services.ledger.receipts


LedgerDep = Annotated[ReceiptLedger, Depends(get_ledger)]


def _public_url(request: Request, base: str | None) -> str:
    if not base:
        return str(request.url)
    query = f"?{request.url.query}" if request.url.query else ""
    return f"{base.rstrip('/')}{request.url.path}{query}"


#: Herald's notification ids are an event id, a channel and a user id: far below this. A
#: longer one is not Herald's and is not looked up (DynamoDB refuses keys over 2 KB).
NOTIFICATION_ID_MAX = 300


def _record(
    ledger: ReceiptLedger,
    receipt: tuple[str, str, float],
    notification_id: str,
    status: NotificationStatus,
    detail: str | None,
) -> Outcome:
    """Apply one receipt; `receipt` is (provider, receipt id, seconds to keep the id)."""
    if len(notification_id) > NOTIFICATION_ID_MAX:
        return Outcome.UNCHANGED
    key = parse_notification_id(notification_id)
    if key is None:
        return Outcome.UNCHANGED
    provider, receipt_id, keep = receipt
    return ledger.apply(provider, receipt_id, keep, key, status, detail)


def _fingerprint(value: Any) -> str:
    """An id for a receipt that came without one: the same receipt, the same id."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


@router.post(
    "/twilio",
    summary="Twilio message status callback (X-Twilio-Signature)",
    responses={403: {"description": "Bad or missing signature."}},
)
async def twilio_status(
    request: Request,
    services: ServicesDep,
    ledger: LedgerDep,
    signature: Annotated[str, Header(alias="X-Twilio-Signature")] = "",
) -> dict[str, Any]:
    # Parsed here rather than with request.form(): Twilio posts plain urlencoded fields,
    # and that needs no multipart parser dependency.
    params = dict(
        parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    )
    url = _public_url(request, services.settings.public_base_url)
    validator = RequestValidator(services.settings.twilio_auth_token)
    if not signature or not validator.validate(url, params, signature):
        raise HTTPException(403, "X-Twilio-Signature: signature does not verify")
    status = TWILIO_STATUSES.get(params.get("MessageStatus", ""))
    notification_id = request.query_params.get("notification_id", "")
    if status is None or not notification_id:
        return {"updated": False}
    detail = params.get("ErrorCode") and f"twilio:{params['ErrorCode']}"
    sid = params.get("MessageSid")
    receipt_id = f"{sid}:{params['MessageStatus']}" if sid else _fingerprint(params)
    # Twilio signs no timestamp: a copy verifies for as long as the notification exists.
    keep = services.settings.event_retention_days * DAY_SECONDS
    outcome = await run_in_threadpool(
        _record, ledger, ("twilio", receipt_id, keep), notification_id, status, detail or None
    )
    if outcome is Outcome.EARLY:
        _too_early()
    return {"updated": outcome is Outcome.UPDATED, "replay": outcome is Outcome.REPLAY}


@router.post(
    "/sendgrid",
    summary="SendGrid signed event webhook",
    responses={403: {"description": "Bad, missing or stale signature."}},
)
async def sendgrid_events(
    request: Request,
    services: ServicesDep,
    ledger: LedgerDep,
    signature: Annotated[str, Header(alias="X-Twilio-Email-Event-Webhook-Signature")] = "",
    timestamp: Annotated[str, Header(alias="X-Twilio-Email-Event-Webhook-Timestamp")] = "",
) -> dict[str, Any]:
    payload = (await request.body()).decode("utf-8", errors="replace")
    key = services.settings.sendgrid_webhook_public_key
    if not key or not signature or not timestamp.isdigit():
        raise HTTPException(
            403, "X-Twilio-Email-Event-Webhook-Signature: missing or not configured"
        )
    if abs(time.time() - int(timestamp)) > SENDGRID_MAX_AGE_SECONDS:
        raise HTTPException(403, "X-Twilio-Email-Event-Webhook-Timestamp: too old")
    try:
        valid = EventWebhook(key).verify_signature(payload, signature, timestamp)
    except (ValueError, TypeError):
        valid = False
    if not valid:
        raise HTTPException(
            403, "X-Twilio-Email-Event-Webhook-Signature: signature does not verify"
        )
    try:
        events = json.loads(payload)
    except ValueError:
        raise HTTPException(422, "body: not a JSON array of events") from None
    if not isinstance(events, list):
        raise HTTPException(422, "body: not a JSON array of events")
    updated = replays = early = 0
    for item in events:
        if not isinstance(item, dict):
            continue
        status = SENDGRID_EVENTS.get(str(item.get("event", "")))
        notification_id = item.get("notification_id")
        if status is None or not isinstance(notification_id, str):
            continue
        detail = item.get("reason") or item.get("response")
        sg_id = item.get("sg_event_id")
        receipt_id = sg_id if isinstance(sg_id, str) and sg_id else _fingerprint(item)
        outcome = await run_in_threadpool(
            _record,
            ledger,
            ("sendgrid", receipt_id, SENDGRID_KEEP_SECONDS),
            notification_id,
            status,
            detail and str(detail),
        )
        updated += outcome is Outcome.UPDATED
        replays += outcome is Outcome.REPLAY
        early += outcome is Outcome.EARLY
    if early:  # the others are replays when the batch comes again
        _too_early()
    return {"updated": updated, "replays": replays}


#: Seconds a provider is asked to wait before posting a receipt again that arrived before
#: its notification's SENT was written (the worker writes it within its outcome deadline).
EARLY_RETRY_AFTER_SECONDS = 10


def _too_early() -> None:
    """A receipt that came before SENT is written: nothing applied or remembered, and a
    503 with Retry-After, since Twilio and SendGrid post a receipt again only after an
    error (a 200 would lose it for good)."""
    raise HTTPException(
        503,
        "receipt arrived before the notification's send was recorded; post it again",
        headers={"Retry-After": str(EARLY_RETRY_AFTER_SECONDS)},
    )
