"""Topics: who gets an event sent to a topic."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Path, Query, Response, status
from starlette.concurrency import run_in_threadpool

from api.deps import ServicesDep
from api.schemas import ID_PATTERN, TOPIC_PATTERN, Problem
from api.schemas_users import SubscriberPage, SubscriptionIn, SubscriptionOut
from core.users import TopicFull

router = APIRouter(prefix="/topics", tags=["topics"])

Topic = Annotated[str, Path(pattern=TOPIC_PATTERN, description="e.g. charts.global")]
UserId = Annotated[str, Path(pattern=ID_PATTERN)]


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
    body: Annotated[SubscriptionIn | None, Body()] = None,
) -> SubscriptionOut:
    channels = None if body is None or body.channels is None else list(body.channels)
    limit = services.settings.max_topic_subscribers
    try:
        subscription = await run_in_threadpool(
            partial(services.users.subscribe, max_subscribers=limit), topic, user_id, channels
        )
    except TopicFull as exc:
        raise HTTPException(
            409,
            f"topic: {topic!r} has {exc.limit} subscribers, the most a topic may have "
            "(HERALD_MAX_TOPIC_SUBSCRIBERS); unsubscribe someone first",
        ) from None
    if subscription is None:
        raise HTTPException(404, f"user_id: no user {user_id!r}")
    return SubscriptionOut.model_validate(subscription.model_dump())


@router.delete(
    "/{topic}/subscribers/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Unsubscribe a user (idempotent)",
)
async def unsubscribe(topic: Topic, user_id: UserId, services: ServicesDep) -> Response:
    await run_in_threadpool(services.users.unsubscribe, topic, user_id)
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
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[
        str | None, Query(max_length=2048, description="next_cursor of the previous page.")
    ] = None,
) -> SubscriberPage:
    page = await run_in_threadpool(services.users.subscribers, topic, limit, cursor)
    return SubscriberPage(
        items=[SubscriptionOut.model_validate(s.model_dump()) for s in page.items],
        next_cursor=page.next_cursor,
    )
