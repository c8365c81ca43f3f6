"""The fake SendGrid v3 mail send: `POST /v3/mail/send` (JSON, Bearer) -> 202 with
`X-Message-Id`, or SendGrid's error body; any address @invalid.example -> 400.

A request's notification id is `custom_args.notification_id` (top level or a
personalization's). Attachments are kept apart from the record (`take_attachments`): the
recorded request lists each one's file name, type, disposition and size, and its bytes
are fetched on their own, so listing messages stays small.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from typing import Any

from localstack.sandbox.reply import Reply

NAME = "sendgrid"
PATH = "/v3/mail/send"
INVALID_EMAIL_DOMAIN = "@invalid.example"
MIME = re.compile(r"^[A-Za-z0-9.+-]{1,64}/[A-Za-z0-9.+-]{1,64}$")  # served back as a header


def matches(path: str) -> bool:
    return path == PATH


def notification_id(entry: dict[str, Any]) -> str | None:
    body = entry["json"]
    if not isinstance(body, dict):
        return None
    args = dict(body.get("custom_args") or {})
    for personalization in body.get("personalizations") or []:
        if isinstance(personalization, dict):
            args = {**(personalization.get("custom_args") or {}), **args}
    value = args.get("notification_id")
    return str(value) if value is not None else None


def take_attachments(entry: dict[str, Any]) -> list[tuple[str, bytes]]:
    """Moves the attachments' content out of a recorded mail send: `entry["attachments"]`
    lists them (filename, type, disposition, size in bytes), the request's `json` and
    `body` keep them without content, and (MIME type, decoded bytes) are returned, in
    order."""
    mail = entry["json"]
    if not isinstance(mail, dict) or not isinstance(mail.get("attachments"), list):
        return []
    files: list[tuple[str, bytes]] = []
    listed: list[dict[str, Any]] = []
    for given in mail["attachments"]:
        if not isinstance(given, dict):
            continue
        try:
            content = base64.b64decode(str(given.pop("content", "")), validate=True)
        except (binascii.Error, ValueError):
            content = b""
        kind = str(given.get("type") or "application/octet-stream")
        files.append((kind if MIME.match(kind) else "application/octet-stream", content))
        listed.append(
            {
                "filename": given.get("filename"),
                "type": given.get("type"),
                "disposition": given.get("disposition"),
                "size": len(content),
            }
        )
    entry["attachments"] = listed
    entry["body"] = json.dumps(mail)
    return files


def error(status: int, message: str, field_: str | None = None) -> Reply:
    return Reply.json(status, {"errors": [{"message": message, "field": field_, "help": None}]})


def fault_reply(status: int, message: str) -> Reply:
    return error(status, message)


def reply(entry: dict[str, Any]) -> Reply:
    auth = entry["auth"] or {}
    if auth.get("scheme") != "bearer" or not auth.get("token"):
        return error(401, "The provided authorization grant is invalid, expired, or revoked")
    mail = entry["json"]
    if not isinstance(mail, dict):
        return error(400, "Bad Request", None)
    personalizations = mail.get("personalizations") or []
    if not personalizations:
        return error(400, "The personalizations field is required.", "personalizations")
    for p_index, personalization in enumerate(personalizations):
        for kind in ("to", "cc", "bcc"):
            for a_index, address in enumerate(personalization.get(kind) or []):
                email = str(address.get("email", ""))
                if "@" not in email or email.lower().endswith(INVALID_EMAIL_DOMAIN):
                    return error(
                        400,
                        "Does not contain a valid address.",
                        f"personalizations.{p_index}.{kind}.{a_index}.email",
                    )
    if not (mail.get("from") or {}).get("email"):
        return error(400, "The from object must be provided.", "from")
    if not mail.get("subject") and not any(p.get("subject") for p in personalizations):
        return error(400, "The subject is required.", "subject")
    if not mail.get("content") and not mail.get("template_id"):
        return error(
            400,
            "Unless a valid template_id is provided, the content parameter is required.",
            "content",
        )
    message_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    return Reply(202, headers={"X-Message-Id": message_id}, message_id=message_id)
