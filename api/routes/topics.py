"""Topics: who gets an event sent to a topic.

Topic names and user ids are the tenant's own (`core.security.tenants`): stored qualified, shown
as the tenant sent them.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Path, Response, status
from starlette.concurrency import run_in_threadpool

from api.deps import DirectoryLimit, PageCursor, ServicesDep, TenantDep
from api.schemas import ID_PATTERN, TOPIC_PATTERN, Problem
from api.schemas_discovery import TopicPage, TopicSummary
from api.schemas_users import SubscriberPage, SubscriptionIn, SubscriptionOut
from core.directory.listing import SORT
from core.directory.profiles import Subscription
from core.directory.subscriptions import TopicFull
from core.security.tenants import Tenant

router = APIRouter(prefix="/topics", tags=["topics"])

Topic = Annotated[str, Path(pattern=TOPIC_PATTERN, description="e.g. charts.global")]
UserId = Annotated[str, Path(pattern=ID_PATTERN)]


def local_subscription(subscription: Subscription, tenant: Tenant) -> SubscriptionOut:
    values = subscription.model_dump()
    values["topic"] = tenant.local(values["topic"])
    values["user_id"] = tenant.local(values["user_id"])
    return SubscriptionOut.model_validate(values)


@router.put(
    "/{topic}/subscribers/{user_id}",
    response_model=SubscriptionOut,
    responses={
        404: {"model": Problem, "description": "No such user."},
        409: {
            "model": Problem,
            "description": "The topic has the most subscribers a topic may have "
            "(HERALD_MAX_TOPIC_SUBSCRIBERS).",
        },
        422: {"model": Problem, "description": "Invalid input; the message names the field."},
    },
    summary="Subscribe a user to a topic, or change the subscription's channels",
)
async def subscribe(
    topic: Topic,
    user_id: UserId,
    services: ServicesDep,
    tenant: TenantDep,
    body: Annotated[SubscriptionIn | None, Body()] = None,
) -> SubscriptionOut:
    channels = None if body is None or body.channels is None else list(body.channels)
    limit = services.settings.max_topic_subscribers
    try:
        subscription = await run_in_threadpool(
            partial(services.users.subscribe, max_subscribers=limit),
            tenant.qualify(topic),
            tenant.qualify(user_id),
            channels,
        )
    except TopicFull as exc:
        held = (
            f"has {exc.limit} subscribers"
            if exc.exact
            else f"is full: its share of the {exc.limit} subscribers a topic may have is taken"
        )
        raise HTTPException(
            409,
            f"topic: {topic!r} {held}, the most a topic may have "
            "(HERALD_MAX_TOPIC_SUBSCRIBERS); unsubscribe someone first",
        ) from None
    if subscription is None:
        raise HTTPException(404, f"user_id: no user {user_id!r}")
    return local_subscription(subscription, tenant)


@router.delete(
    "/{topic}/subscribers/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Unsubscribe a user (idempotent)",
)
async def unsubscribe(
    topic: Topic, user_id: UserId, services: ServicesDep, tenant: TenantDep
) -> Response:
    await run_in_threadpool(
        services.users.unsubscribe, tenant.qualify(topic), tenant.qualify(user_id)
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"model": Problem, "description": "Bad limit or a cursor this API did not issue."}
}


@router.get(
    "/{topic}/subscribers",
    response_model=SubscriberPage,
    responses=ERRORS,
    summary="A topic's subscribers, in user id order, a page at a time",
)
async def list_subscribers(
    topic: Topic,
    services: ServicesDep,
    tenant: TenantDep,
    limit: DirectoryLimit = 100,
    cursor: PageCursor = None,
) -> SubscriberPage:
    page = await run_in_threadpool(services.users.subscribers, tenant.qualify(topic), limit, cursor)
    return SubscriberPage(
        items=[local_subscription(s, tenant) for s in page.items],
        next_cursor=page.next_cursor,
    )


@router.get(
    "",
    response_model=TopicPage,
    responses=ERRORS,
    summary="The tenant's topics with their subscriber counts, by name, a page at a time",
    description="A topic is listed from its first subscription on (core/directory/listing.py).",
)
async def list_topics(
    services: ServicesDep,
    tenant: TenantDep,
    limit: DirectoryLimit = 100,
    cursor: PageCursor = None,
) -> TopicPage:
    page = await run_in_threadpool(services.directory.page, "TOPIC", tenant.name, limit, cursor)
    counts = await run_in_threadpool(services.users.counts.totals, page.items)
    return TopicPage(
        items=[
            TopicSummary(topic=item[SORT], subscribers=count)
            for item, count in zip(page.items, counts, strict=True)
        ],
        next_cursor=page.next_cursor,
    )
