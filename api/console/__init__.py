"""The operator console: server-rendered pages under `/console`, served by the API process.

`install(app)` adds its pages, its static files and the two exception handlers that turn
a page's refusal into an HTML page (or a redirect to sign in) instead of the API's JSON.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from api.console import pages_alerts, pages_auth, pages_events, pages_ops, pages_rules
from api.console.web import BASE, PageError, SignInNeeded, redirect, render, sign_in_url

STATIC = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    app.mount(f"{BASE}/static", StaticFiles(directory=STATIC), name="console-static")
    for module in (pages_auth, pages_ops, pages_events, pages_alerts, pages_rules):
        app.include_router(module.router, include_in_schema=False)

    async def on_page_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, PageError):
            raise exc
        signed_in = getattr(request.state, "console_viewer", None)
        return render(
            request, "error.html", signed_in, status=exc.status, error=exc.message, code=exc.status
        )

    async def on_sign_in(_: Request, exc: Exception) -> Response:
        if not isinstance(exc, SignInNeeded):
            raise exc
        return redirect(sign_in_url(exc.back_to))

    app.add_exception_handler(PageError, on_page_error)
    app.add_exception_handler(SignInNeeded, on_sign_in)
