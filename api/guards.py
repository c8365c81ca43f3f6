"""Request guards that run before routing: body size (413) and content type (415).

An ASGI middleware rather than a dependency so an oversized body is refused before it is
read into memory, chunked uploads included.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

BODY_METHODS = {"POST", "PUT", "PATCH"}
# Provider webhooks post form-encoded bodies; they are checked by signature instead. The
# console's HTML forms post form-encoded bodies too (checked by session and CSRF token).
FORM_PREFIXES = ("/webhooks/", "/console/")


async def _problem(send: Send, status: int, message: str) -> None:
    body = json.dumps({"message": message, "detail": None}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class RequestGuard:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            await _problem(send, 413, f"request body over {self.max_body_bytes} bytes")
            return
        content_type = headers.get("content-type")
        has_body = length is None or length != "0"
        if (
            has_body
            and content_type is not None
            and not scope["path"].startswith(FORM_PREFIXES)
            and not _is_json(content_type)
        ):
            await _problem(
                send, 415, f"content-type {content_type!r} not supported; send application/json"
            )
            return

        if length is not None:
            # The server enforces Content-Length framing, so the check above suffices.
            await self.app(scope, receive, send)
            return
        # Chunked: buffer up to the limit (small by design) and replay it to the app.
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # client went away
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_body_bytes:
                await _problem(send, 413, f"request body over {self.max_body_bytes} bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
