"""Counting every HTTP answer by route template, method and status.

A pure ASGI middleware (no per-request Request/Response objects): it reads the status from
the response's start message and the matched route's template from the scope after the
app has run, so `/events/{event_id}` is one series however many events there are. Paths no
route matched (404s, probes) share the label `unmatched`.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.platform import metrics


class RequestMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the server answers if the app raises before starting one

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            metrics.API_REQUESTS.labels(_template(scope), scope["method"], str(status)).inc()


def _template(scope: Scope) -> str:
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"
