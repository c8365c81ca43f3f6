"""The FastAPI application factory.

uvicorn api.main:create_app --factory
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from api import console, docs_ui, errors, examples
from api.auth import scoped
from api.guards import RequestGuard
from api.observability import RequestMetrics
from api.query_guard import reject_unknown_query
from api.routes import (
    alerts,
    dlq,
    event_cancel,
    event_types,
    events,
    health,
    keys,
    metrics,
    rules,
    stats,
    topics,
    users,
    webhooks,
)
from api.services import Services
from api.slashes import TrailingSlash
from core.aws.clients import AwsClients
from core.platform import tracing
from core.platform.logs import configure_logging
from core.platform.runtime import freeze_startup_objects
from core.platform.settings import Settings

DESCRIPTION = """
Herald turns events into notifications (SMS, WhatsApp, email, push, chat).

POST an event; Herald records it, publishes it and answers **202** with its id. Follow
its notifications with `GET /events/{event_id}`.

Every route but `/`, `/docs` and `/health` needs an API key (`X-API-Key` or
`Authorization: Bearer`); `make run` prints a development key. Use **Authorize** above.
"""


def create_app(settings: Settings | None = None, clients: AwsClients | None = None) -> FastAPI:
    """The app; built with no arguments (uvicorn's factory call) it is its process's only
    app and also freezes start-up objects out of the garbage collector's way."""
    owns_process = settings is None and clients is None
    settings = settings or Settings()
    clients = clients or AwsClients(settings)
    configure_logging("api")
    tracing.configure(settings, "api")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.services = Services.build(settings, clients)
        if owns_process:
            freeze_startup_objects()
        yield
        await app.state.services.intake.drain()

    app = FastAPI(
        title="Herald",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        redirect_slashes=False,  # TrailingSlash routes both spellings instead
        docs_url=None,  # served by api.docs_ui from the installed package, not a CDN
        redoc_url=None,
    )
    app.add_middleware(RequestGuard, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(RequestMetrics)
    app.add_middleware(TrailingSlash)
    errors.install(app)
    # Unknown query parameters are refused everywhere but on the provider webhooks, whose
    # callbacks carry what the provider adds (and are verified by signature).
    strict = [Depends(reject_unknown_query)]
    app.include_router(health.router, dependencies=strict)
    # Scopes per router: read for GET, write for the rest. Webhooks verify signatures.
    read_write = scoped("events:read", "events:write")
    app.include_router(events.router, dependencies=[*read_write, *strict])
    app.include_router(event_cancel.router, dependencies=[*read_write, *strict])
    app.include_router(event_types.router, dependencies=[*read_write, *strict])
    app.include_router(users.router, dependencies=[*scoped("users:write"), *strict])
    app.include_router(topics.router, dependencies=[*scoped("users:write"), *strict])
    # Dead letters hold every tenant's messages, and rules run the operator's queries against
    # data sources: both are the operator's alone (an `admin` key is its own tenant's).
    app.include_router(dlq.router, dependencies=[*scoped("operator"), *strict])
    app.include_router(alerts.router, dependencies=[*read_write, *strict])
    app.include_router(alerts.silences_router, dependencies=[*read_write, *strict])
    app.include_router(rules.router, dependencies=[*scoped("operator"), *strict])
    app.include_router(keys.router, dependencies=[*scoped("admin"), *strict])
    app.include_router(webhooks.router)
    # Scrapers may add their own query parameters: /metrics is not strict.
    app.include_router(metrics.router, dependencies=scoped("events:read"))
    app.include_router(stats.router, dependencies=[*scoped("events:read"), *strict])
    docs_ui.install(app)
    # The operator console's pages (/console): HTML over the same services and checks.
    console.install(app)
    examples.install(app)
    return app
