"""`GET /metrics`: Prometheus's scrape target, with every local process's series when
`PROMETHEUS_MULTIPROC_DIR` is set (see core/platform/metrics.py)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from core.platform import metrics

router = APIRouter(tags=["observability"])


@router.get(
    "/metrics",
    summary="Prometheus metrics (text exposition format)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
async def scrape() -> Response:
    # Merging many processes' files reads from disk: off the event loop.
    body = await run_in_threadpool(metrics.render)
    return Response(body, media_type=metrics.CONTENT_TYPE)
