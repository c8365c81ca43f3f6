"""API keys over HTTP (admin): list them and revoke one.

An `admin` key lists and revokes its own tenant's keys (another tenant's key is a 404, as if
it did not exist); an `operator` key, every tenant's.

Revoking here also drops the key from this process's verification cache at once; other
API processes keep trusting it for up to `HERALD_API_KEY_CACHE_SECONDS`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Response, status
from starlette.concurrency import run_in_threadpool

from api.deps import ServicesDep, TenantDep
from api.schemas import Problem

router = APIRouter(prefix="/keys", tags=["api keys"])

KeyId = Annotated[str, Path(pattern=r"^[A-Za-z0-9-]{1,32}$", description="The key's id.")]


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
