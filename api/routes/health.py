"""Welcome and health: an open status for load balancers, details behind the admin scope."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.auth import scoped
from api.deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/", summary="Welcome")
async def welcome() -> dict[str, str]:
    return {"service": "herald", "docs": "/docs", "openapi": "/openapi.json"}


async def _answer(services: ServicesDep, details: bool) -> JSONResponse:
    results = await run_in_threadpool(services.readiness.results)
    healthy = all(v == "ok" for v in results.values())
    body: dict[str, object] = {"status": "ok" if healthy else "degraded"}
    if details:
        body["checks"] = results
    return JSONResponse(body, status_code=200 if healthy else 503)


@router.get(
    "/health",
    summary="Whether DynamoDB and SNS answer (open; from a check at most "
    "HERALD_HEALTH_CACHE_SECONDS old)",
    responses={503: {"description": "A dependency does not answer."}},
)
async def health(services: ServicesDep) -> JSONResponse:
    return await _answer(services, details=False)


@router.get(
    "/health/details",
    summary="The same check, with each dependency's answer (admin scope)",
    responses={503: {"description": "A dependency does not answer."}},
    dependencies=scoped("admin"),
)
async def health_details(services: ServicesDep) -> JSONResponse:
    return await _answer(services, details=True)
