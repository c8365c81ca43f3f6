"""Provider delivery receipts. Authenticated by the provider's signature, nothing else.

A request whose signature does not verify is a 403 and changes nothing. A receipt moves a
SENT notification to DELIVERED, UNDELIVERED or BOUNCED; the event's tally is not changed
(the provider took the message, which is what SENT counts).
"""

from __future__ import annotations

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
from core.models import NotificationStatus, parse_notification_id
from core.notification_store import NotificationStore

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


async def get_notifications(services: ServicesDep) -> NotificationStore:
    clients = services.clients
    return NotificationStore(
        clients.dynamodb, clients.names.table, services.settings.event_retention_days
    )


NotificationsDep = Annotated[NotificationStore, Depends(get_notifications)]


def _public_url(request: Request, base: str | None) -> str:
    if not base:
        return str(request.url)
    query = f"?{request.url.query}" if request.url.query else ""
    return f"{base.rstrip('/')}{request.url.path}{query}"


#: Herald's notification ids are an event id, a channel and a user id: far below this. A
#: longer one is not Herald's and is not looked up (DynamoDB refuses keys over 2 KB).
NOTIFICATION_ID_MAX = 300


def _record(
    store: NotificationStore, notification_id: str, status: NotificationStatus, detail: str | None
) -> bool:
    if len(notification_id) > NOTIFICATION_ID_MAX:
        return False
    key = parse_notification_id(notification_id)
    if key is None:
        return False
    return store.record_receipt(*key, status=status, detail=detail)


@router.post(
    "/twilio",
    summary="Twilio message status callback (X-Twilio-Signature)",
    responses={403: {"description": "Bad or missing signature."}},
)
async def twilio_status(
    request: Request,
    services: ServicesDep,
    store: NotificationsDep,
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
    updated = await run_in_threadpool(_record, store, notification_id, status, detail or None)
    return {"updated": updated}


@router.post(
    "/sendgrid",
    summary="SendGrid signed event webhook",
    responses={403: {"description": "Bad, missing or stale signature."}},
)
async def sendgrid_events(
    request: Request,
    services: ServicesDep,
    store: NotificationsDep,
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
    updated = 0
    for item in events:
        if not isinstance(item, dict):
            continue
        status = SENDGRID_EVENTS.get(str(item.get("event", "")))
        notification_id = item.get("notification_id")
        if status is None or not isinstance(notification_id, str):
            continue
        detail = item.get("reason") or item.get("response")
        if await run_in_threadpool(_record, store, notification_id, status, detail and str(detail)):
            updated += 1
    return {"updated": updated}
