"""Sign-in with an API key, and sign-out.

The key is verified as the API verifies it (`api.auth.authenticate`: the same failure limit
per client address and the same caches), then only its id and hash go into the session.
The sign-in form carries a CSRF token of its own (a cookie and a field that must match),
as there is no session yet to hold one.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from api.auth import authenticate
from api.console.web import (
    BASE,
    CSRF_FIELD,
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    PageError,
    form,
    new_token,
    posted,
    redirect,
    render,
    safe_next,
    session_store,
    set_cookie,
)

router = APIRouter(prefix=BASE)
KEY_FIELD_MAX = 200


def _sign_in_page(
    request: Request, next_url: str, error: str | None = None, status: int = 200
) -> Response:
    token = new_token()
    response = render(
        request, "sign_in.html", status=status, csrf=token, next_url=next_url, error=error
    )
    set_cookie(request, response, SIGN_IN_COOKIE, token, f"{BASE}/sign-in")
    return response


@router.get("/sign-in")
async def sign_in_form(
    request: Request, next: Annotated[str | None, Query(max_length=2048)] = None
) -> Response:
    return _sign_in_page(request, safe_next(next))


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    fields = await form(request)
    expected = request.cookies.get(SIGN_IN_COOKIE, "")
    given = fields.get(CSRF_FIELD, "")
    if not expected or not hmac.compare_digest(expected, given):
        raise PageError(403, "the sign-in form's CSRF token is missing or stale; reload the page")
    next_url = safe_next(fields.get("next"))
    token = fields.get("api_key", "").strip()[: KEY_FIELD_MAX + 1]
    try:
        key = await authenticate(request, token)
    except HTTPException as exc:
        return _sign_in_page(request, next_url, f"API key: {exc.detail}", exc.status_code)
    session = await run_in_threadpool(session_store(request).create, key, token)
    response = redirect(next_url)
    set_cookie(request, response, SESSION_COOKIE, session.session_id, BASE)
    response.delete_cookie(SIGN_IN_COOKIE, path=f"{BASE}/sign-in")
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    viewer, _ = await posted(request, None)
    await run_in_threadpool(session_store(request).delete, viewer.session.session_id)
    response = redirect(f"{BASE}/sign-in")
    response.delete_cookie(SESSION_COOKIE, path=BASE)
    return response
