"""Error bodies: every 4xx names the field at fault; no input produces a 500.

Validation errors leave out the offending input, which may hold phone numbers or emails.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.error_docs import document_errors
from api.intake import AcceptPending
from core.aws.dynamo import BadCursor
from core.directory.subscriptions import StoreBusy

log = logging.getLogger("herald.api")

RETRY_AFTER_SECONDS = 5
FASTAPI_BODY_PARSE_ERROR = "There was an error parsing the body"
NOT_JSON = {"loc": ("body",), "msg": "not valid JSON (UTF-8 expected)", "type": "json_invalid"}


def _loc(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:] or parts
    return ".".join(parts) or "body"


def validation_problem(errors: Sequence[Any]) -> dict[str, Any]:
    detail = [
        {
            "loc": list(e.get("loc", ())),
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in errors
    ]
    message = "; ".join(f"{_loc(d['loc'])}: {d['msg']}" for d in detail)
    return {"message": message, "detail": detail}


def json_position(body: object, pos: int) -> str:
    """Where in the body a JSON syntax error is, as an editor shows it."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return f"line {line} column {column} (char {pos})"


def body_syntax_errors(errors: Sequence[Any], body: object) -> list[Any]:
    """FastAPI reports malformed JSON at loc ("body", <char offset>), which reads as a field
    named after a number; say instead what is wrong and where."""
    out: list[Any] = []
    for error in errors:
        loc = tuple(error.get("loc", ()))
        if error.get("type") == "json_invalid" and len(loc) == 2 and isinstance(loc[1], int):
            problem = (error.get("ctx") or {}).get("error") or "malformed"
            error = {
                "loc": ("body",),
                "msg": f"not valid JSON: {problem} at {json_position(body, loc[1])}",
                "type": "json_invalid",
            }
        out.append(error)
    return out


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def on_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = body_syntax_errors(list(exc.errors()), exc.body)
        return JSONResponse(validation_problem(errors), status_code=422)

    @app.exception_handler(BadCursor)
    async def on_bad_cursor(_: Request, exc: BadCursor) -> JSONResponse:
        return JSONResponse(
            {
                "message": f"cursor: {exc}",
                "detail": [{"loc": ["query", "cursor"], "msg": str(exc), "type": "value_error"}],
            },
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def on_http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == FASTAPI_BODY_PARSE_ERROR:
            # Bytes that are not UTF-8 where JSON was announced: the same mistake as
            # malformed JSON, which FastAPI answers 422, so answer it the same way.
            return JSONResponse(validation_problem([NOT_JSON]), status_code=422)
        message = exc.detail if isinstance(exc.detail, str) else "error"
        return JSONResponse(
            {"message": message, "detail": None if isinstance(exc.detail, str) else exc.detail},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    async def on_aws(_: Request, exc: Exception) -> JSONResponse:
        # The store or the topic did not answer: nothing was accepted, the client retries.
        log.warning("AWS unavailable: %s", exc)
        return JSONResponse(
            {"message": "storage or messaging is unavailable; retry later", "detail": None},
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    async def on_pending(_: Request, exc: Exception) -> JSONResponse:
        log.warning("accept not confirmed in time: %s", exc)
        return JSONResponse(
            {
                "message": "AWS did not confirm the event in time; it may still be recorded: "
                "retry with the same Idempotency-Key (a repeat returns the event if it was)",
                "detail": None,
            },
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    app.add_exception_handler(AcceptPending, on_pending)
    app.add_exception_handler(ClientError, on_aws)
    app.add_exception_handler(BotoCoreError, on_aws)
    app.add_exception_handler(StoreBusy, on_aws)
    document_errors(app)
