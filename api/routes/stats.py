"""`GET /stats`: a compact summary for people and scripts (see core/operations/stats.py).

Event counts are the caller's tenant's (every tenant's with `operator`); the notification,
latency and DLQ figures come from the stack's metrics and queues and are stack-wide.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from api.deps import ServicesDep, TenantDep
from api.services import Services
from core.operations import stats
from core.platform import metrics
from core.security.tenants import Tenant

router = APIRouter(tags=["observability"])

WINDOW = timedelta(hours=1)


@router.get("/stats", summary="Events by status (last hour), notifications, DLQs, latency")
async def get_stats(services: ServicesDep, tenant: TenantDep) -> dict[str, Any]:
    return await run_in_threadpool(_summary, services, tenant)


def _summary(services: Services, tenant: Tenant) -> dict[str, Any]:
    clients = services.clients
    registry = metrics.registry()
    return {
        "events": stats.events_by_status(
            clients.dynamodb,
            clients.names.table,
            WINDOW,
            tenant=None if tenant.operator else tenant.name,
            layout=services.ledger.layout,
        ),
        "notifications": stats.notifications_by_channel(registry),
        "end_to_end_seconds": stats.latency_quantiles(registry),
        "dlq_depths": stats.dlq_depths(clients.sqs, clients.queue_url, clients.names),
    }
