"""What every console page shares: templates, the signed-in viewer, CSRF and forms.

Pages reuse the JSON routes' functions with the viewer's services and tenant, so the
console sees exactly what the key sees through the API; the scope a page needs is checked
with the same `ApiKey.allows` the API's routers check. An `HTTPException` a route raises
becomes the same status as an HTML page.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from ipaddress import ip_address
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote

from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from api.console.sessions import SESSION_SECONDS, Session, SessionStore
from api.services import Services
from core.security.api_keys import ApiKey
from core.security.tenants import Tenant

BASE = "/console"
SESSION_COOKIE = "herald_console"
#: The sign-in form's own CSRF token, before there is a session to hold one.
SIGN_IN_COOKIE = "herald_console_sign_in"
CSRF_FIELD = "csrf"
#: Longest form body the console reads (the API's body limit applies before this).
FORM_MAX_FIELDS = 200

T = TypeVar("T")

templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters["pretty"] = lambda value: json.dumps(value, indent=2, sort_keys=True, default=str)
templates.filters["epoch_ms"] = lambda value: (
    datetime.fromtimestamp(int(value) / 1000, UTC).isoformat(timespec="seconds")
    if str(value).isdigit() and len(str(value)) <= 15
    else value
)
templates.filters["slug"] = lambda value: "".join(
    c if c.isalnum() else "-" for c in str(value).lower()
)


class PageError(Exception):
    """An error page with this status (the API would answer the same status)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class SignInNeeded(Exception):
    """No valid session: the browser is sent to sign in, then back here."""

    def __init__(self, back_to: str) -> None:
        super().__init__(back_to)
        self.back_to = back_to


@dataclass(frozen=True)
class Viewer:
    """The signed-in key, its tenant and session."""

    key: ApiKey
    session: Session
    services: Services

    @property
    def tenant(self) -> Tenant:
        return self.key.tenant()

    def can(self, scope: str) -> bool:
        return self.key.allows(scope)

    def require(self, scope: str) -> None:
        if not self.can(scope):
            raise PageError(403, f"this key lacks the {scope!r} scope")


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def session_store(request: Request) -> SessionStore:
    """One store per app, made on first use from the app's clients (no I/O to make)."""
    store: SessionStore | None = getattr(request.app.state, "console_sessions", None)
    if store is None:
        services = services_of(request)
        store = SessionStore(
            services.clients.dynamodb,
            services.clients.names.table,
            services.settings.api_key_cache_seconds,
        )
        request.app.state.console_sessions = store
    return store


async def viewer(request: Request, scope: str | None = None) -> Viewer:
    """The signed-in viewer (SignInNeeded without a live session), within its key's rate
    limit and, given `scope`, holding it (else a 403 page)."""
    store = session_store(request)
    session_id = request.cookies.get(SESSION_COOKIE, "")
    session = await run_in_threadpool(store.get, session_id) if session_id else None
    key = await run_in_threadpool(store.key_of, session) if session else None
    if session is None or key is None:
        back_to = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInNeeded(back_to if request.method == "GET" else BASE)
    wait = services_of(request).auth.retry_after(key)
    if wait > 0:
        raise PageError(429, "this key's rate limit is reached; retry in a moment")
    found = Viewer(key, session, services_of(request))
    request.state.console_viewer = found  # an error page still shows the signed-in menu
    if scope is not None:
        found.require(scope)
    return found


async def form(request: Request) -> dict[str, str]:
    """A urlencoded form's fields, the last value of each (bodies are bounded upstream)."""
    body = (await request.body()).decode("utf-8", "replace")
    fields = parse_qs(body, keep_blank_values=True, max_num_fields=FORM_MAX_FIELDS)
    return {name: values[-1] for name, values in fields.items()}


async def posted(request: Request, scope: str | None) -> tuple[Viewer, dict[str, str]]:
    """The viewer and the form of a POST whose CSRF token is the session's (else 403)."""
    found = await viewer(request)
    fields = await form(request)
    if not found.session.csrf_matches(fields.get(CSRF_FIELD)):
        raise PageError(403, "the form's CSRF token is missing or stale; reload the page")
    if scope is not None:
        found.require(scope)
    return found, fields


async def call(awaitable: Awaitable[T]) -> T:
    """A JSON route's function, its HTTPException turned into the same status as a page."""
    try:
        return await awaitable
    except HTTPException as exc:
        raise PageError(exc.status_code, str(exc.detail)) from None


def is_loopback(request: Request) -> bool:
    host = request.url.hostname or ""
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def set_cookie(request: Request, response: Response, name: str, value: str, path: str) -> None:
    """HttpOnly, SameSite=Strict, and Secure unless the console is reached on loopback
    (where browsers do not need https)."""
    response.set_cookie(
        name,
        value,
        max_age=SESSION_SECONDS,
        path=path,
        httponly=True,
        samesite="strict",
        secure=not is_loopback(request),
    )


def new_token() -> str:
    return secrets.token_urlsafe(32)


def render(
    request: Request,
    template: str,
    viewer: Viewer | None = None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    html = templates.get_template(template).render(
        base=BASE,
        viewer=viewer,
        csrf=viewer.session.csrf if viewer else context.pop("csrf", ""),
        path=request.url.path,
        **context,
    )
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)


def sign_in_url(back_to: str) -> str:
    return f"{BASE}/sign-in?next={quote(back_to, safe='/')}"


def safe_next(value: str | None) -> str:
    """Only a console path: the sign-in never sends a browser elsewhere."""
    if value and value.startswith(BASE) and not value.startswith("//") and "\\" not in value:
        return value
    return BASE


#: Pages load nothing from elsewhere, are never framed, and are not cached.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
