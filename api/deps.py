"""`Annotated` dependency aliases, so routes declare what they use by type."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request

from api.services import Services
from core.security.api_keys import ApiKey
from core.security.tenants import UNAUTHENTICATED, Tenant


async def get_services(request: Request) -> Services:
    # async: FastAPI runs a plain `def` dependency in the thread pool, a hop per request.
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_tenant(request: Request) -> Tenant:
    """The tenant of the request's key (set by `api.auth.require`, which every router that
    takes this runs first); with auth switched off, the one tenant that sees everything."""
    key: ApiKey | None = getattr(request.state, "api_key", None)
    if key is not None:
        return key.tenant()
    if request.app.state.services.auth.enabled:
        raise HTTPException(401, "X-API-Key: an API key is required")
    return UNAUTHENTICATED


TenantDep = Annotated[Tenant, Depends(get_tenant)]

# The cursor a page answered with (`next_cursor`), for the page after it.
PageCursor = Annotated[
    str | None, Query(max_length=2048, description="next_cursor of the previous page.")
]
# Page size of the directory listings (users, topics, a topic's subscribers).
DirectoryLimit = Annotated[int, Query(ge=1, le=1000)]
