"""A trailing slash routes like the path without it.

Starlette would answer `/events/` with an empty 307 to `/events`, which curl does not
follow and which re-sends a body only on clients that honour 307. Every Herald path is
slash-free, so the slash is dropped before routing and both spellings answer the same.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send


class TrailingSlash:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and len(path) > 1 and path.endswith("/"):
            stripped = path.rstrip("/") or "/"
            raw = scope.get("raw_path")
            scope = {
                **scope,
                "path": stripped,
                "raw_path": raw.rstrip(b"/") or b"/" if isinstance(raw, bytes) else raw,
            }
        await self.app(scope, receive, send)
