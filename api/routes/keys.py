"""API keys over HTTP (admin): create one, list them and revoke one.

An `admin` key creates keys of its own tenant and lists and revokes its own tenant's keys
(another tenant's key is a 404, as if it did not exist); an `operator` key lists and
revokes every tenant's. No request makes an `operator` key (the command line does). A new
key may carry its own inline-recipient limits (core/security/inline_recipients.py).

Revoking here also drops the key from this process's verification cache at once; other
API processes keep trusting it for up to `HERALD_API_KEY_CACHE_SECONDS`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Path, Response, status
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.deps import ServicesDep, TenantDep
from api.schemas import Problem
from core.security.api_keys import OPERATOR, SCOPES, ApiKeyStore, check_inline_limits

router = APIRouter(prefix="/keys", tags=["api keys"])

KeyId = Annotated[str, Path(pattern=r"^[A-Za-z0-9-]{1,32}$", description="The key's id.")]


class KeyIn(BaseModel):
    name: str = Field(min_length=1, max_length=100, description="What the key is for.")
    scopes: list[str] = Field(
        min_length=1, max_length=len(SCOPES), description=f"Some of {', '.join(SCOPES)}."
    )
    inline_prefixes: str | None = Field(
        default=None,
        max_length=2000,
        description="E.164 prefixes (`+1,+44`) this key's inline SMS and WhatsApp numbers "
        "must start with, within the deployment's (HERALD_INLINE_SMS_PREFIXES).",
    )
    inline_daily_quota: int | None = Field(
        default=None,
        ge=0,
        le=10_000_000,
        description="Inline recipients this key may address per UTC day, instead of "
        "HERALD_INLINE_DAILY_QUOTA (0: no quota).",
    )


KEY_EXAMPLES: dict[str, Any] = {
    "pager": {
        "summary": "A pager's key: inline texts to US and UK numbers, 200 recipients a day",
        "value": {
            "name": "pager",
            "scopes": ["events:write"],
            "inline_prefixes": "+1,+44",
            "inline_daily_quota": 200,
        },
    },
    "reader": {
        "summary": "A dashboard's read-only key",
        "value": {"name": "dashboard", "scopes": ["events:read"]},
    },
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        403: {"model": Problem, "description": "The operator scope is not made over HTTP."},
        422: {"model": Problem, "description": "Invalid key; the message names the field."},
    },
    summary="Create a key of the caller's tenant; its secret is in this answer only",
)
async def create_key(
    body: Annotated[KeyIn, Body(openapi_examples=KEY_EXAMPLES)],
    services: ServicesDep,
    tenant: TenantDep,
) -> dict[str, Any]:
    unknown = [s for s in body.scopes if s not in SCOPES]
    if unknown:
        raise HTTPException(422, f"scopes: unknown {unknown[0]!r}; choose from {', '.join(SCOPES)}")
    if OPERATOR in body.scopes:
        raise HTTPException(403, "scopes: an operator key is made from the command line only")
    try:
        prefixes, quota = check_inline_limits(body.inline_prefixes, body.inline_daily_quota)
    except ValueError as exc:
        field = "inline_prefixes" if "prefix" in str(exc) else "inline_daily_quota"
        raise HTTPException(422, f"{field}: {exc}") from None
    store = ApiKeyStore(services.clients.dynamodb, services.clients.names.table)
    key, token = await run_in_threadpool(
        store.create,
        body.name,
        tuple(dict.fromkeys(body.scopes)),
        owner=tenant.name,
        inline_prefixes=prefixes,
        inline_daily_quota=quota,
    )
    return {**key.public(), "api_key": token}


@router.get("", summary="The tenant's API keys (operator: every key), newest first, no secrets")
async def list_keys(services: ServicesDep, tenant: TenantDep) -> list[dict[str, Any]]:
    keys = await run_in_threadpool(services.auth.store.list_keys)
    return [key.public() for key in keys if tenant.can_read(key.owner)]


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={404: {"model": Problem, "description": "No such key."}},
    summary="Revoke a key: refused by this process at once, by the others within "
    "HERALD_API_KEY_CACHE_SECONDS",
)
async def revoke_key(key_id: KeyId, services: ServicesDep, tenant: TenantDep) -> Response:
    store = services.auth.store
    owner = await run_in_threadpool(store.owner_of, key_id)
    if (
        owner is None
        or not tenant.can_read(owner)
        or not await run_in_threadpool(store.revoke, key_id)
    ):
        raise HTTPException(404, f"key_id: no key {key_id!r}")
    services.auth.forget(key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
