"""`Annotated` dependency aliases, so routes declare what they use by type."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.services import Services


async def get_services(request: Request) -> Services:
    # async: FastAPI runs a plain `def` dependency in the thread pool, a hop per request.
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
