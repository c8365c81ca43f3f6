"""The fake Twilio Messaging API: `POST /2010-04-01/Accounts/{sid}/Messages.json` (form,
HTTP basic auth) -> 201 with a message resource, or Twilio's error body.

`To` numbers as in Twilio's test credentials fail as Twilio fails them (`MAGIC_TO`), also
with a `whatsapp:` prefix. `POST /twilio/status` stands in for a status callback (204).
A request's notification id is the `notification_id` query parameter of its
`StatusCallback` URL.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

from localstack.sandbox.reply import Reply

NAME = "twilio"
MESSAGES = re.compile(r"^/2010-04-01/Accounts/(?P<sid>[^/]+)/Messages\.json$")
STATUS_CALLBACK = "/twilio/status"
MAGIC_TO: dict[str, tuple[int, str]] = {
    "+15005550001": (21211, "The 'To' number {to} is not a valid phone number."),
    "+15005550002": (21612, "The 'To' phone number: {to}, is not currently reachable."),
    "+15005550003": (21408, "Permission to send an SMS has not been enabled for {to}."),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient {to}."),
    "+15005550009": (21614, "The 'To' number {to} is not a valid mobile number."),
}


def matches(path: str) -> bool:
    return MESSAGES.match(path) is not None


def notification_id(entry: dict[str, Any]) -> str | None:
    if not entry["form"]:
        return None
    callback = entry["form"].get("StatusCallback")
    if isinstance(callback, str):
        ids = parse_qs(urlsplit(callback).query).get("notification_id")
        return ids[0] if ids else None
    return None


def error(status: int, code: int, message: str) -> Reply:
    return Reply.json(
        status,
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
    )


def fault_reply(status: int, code: int | None, message: str) -> Reply:
    """An injected failure in Twilio's shape (code 20429 for 429, 20500 for 5xx)."""
    code = code or (20429 if status == 429 else 20500 if status >= 500 else status)
    return error(status, code, message)


def reply(entry: dict[str, Any]) -> Reply:
    sid = MESSAGES.match(entry["path"]).group("sid")  # type: ignore[union-attr]
    auth = entry["auth"] or {}
    if auth.get("scheme") != "basic" or not auth.get("username") or not auth.get("password"):
        return error(401, 20003, "Authenticate")
    form: dict[str, Any] = entry["form"] or {}
    to, sender = form.get("To"), form.get("From")
    service = form.get("MessagingServiceSid")
    if not to:
        return error(400, 21604, "A 'To' phone number is required.")
    if not sender and not service:
        return error(400, 21603, "A 'From' phone number is required.")
    if not form.get("Body") and not form.get("MediaUrl") and not form.get("ContentSid"):
        return error(400, 21602, "Message body is required.")
    magic = MAGIC_TO.get(str(to).removeprefix("whatsapp:"))
    if magic is not None:
        return error(400, magic[0], magic[1].format(to=to))
    message_sid = f"SM{uuid.uuid4().hex}"
    now = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
    uri = f"/2010-04-01/Accounts/{sid}/Messages/{message_sid}.json"
    body = {
        "sid": message_sid,
        "account_sid": sid,
        "api_version": "2010-04-01",
        "body": form.get("Body", ""),
        "date_created": now,
        "date_updated": now,
        "date_sent": None,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": sender,
        "messaging_service_sid": service,
        "num_media": "0",
        "num_segments": "1",
        "price": None,
        "price_unit": "USD",
        "status": "accepted" if service and not sender else "queued",
        "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
        "to": to,
        "uri": uri,
    }
    return Reply.json(201, body, message_id=message_sid)
