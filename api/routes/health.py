"""Welcome and health."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/", summary="Welcome")
async def welcome() -> dict[str, str]:
    return {"service": "herald", "docs": "/docs", "openapi": "/openapi.json"}


def _check(services: Any) -> dict[str, str]:
    results: dict[str, str] = {}
    checks = {
        "dynamodb": lambda: services.clients.dynamodb.describe_table(
            TableName=services.clients.names.table
        ),
        "sns": lambda: services.clients.sns.get_topic_attributes(
            TopicArn=services.clients.topic_arn
        ),
    }
    for name, check in checks.items():
        try:
            check()
            results[name] = "ok"
        except (ClientError, BotoCoreError) as exc:
            results[name] = f"error: {type(exc).__name__}"
    return results


@router.get(
    "/health",
    summary="Whether DynamoDB and SNS answer",
    responses={503: {"description": "A dependency does not answer."}},
)
async def health(services: ServicesDep) -> JSONResponse:
    results = await run_in_threadpool(_check, services)
    healthy = all(v == "ok" for v in results.values())
    return JSONResponse(
        {"status": "ok" if healthy else "degraded", "checks": results},
        status_code=200 if healthy else 503,
    )
