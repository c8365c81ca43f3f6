"""Dead-letter queues: depth, peek and redrive. (An admin surface.)"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.deps import ServicesDep
from api.schemas import Problem
from core.operations.dead_letters import DeadLetters, UnknownQueue

router = APIRouter(prefix="/dlq", tags=["dead letters"])


async def get_dead_letters(services: ServicesDep) -> DeadLetters:
    return DeadLetters(services.clients, services.ledger, services.users)


DeadLettersDep = Annotated[DeadLetters, Depends(get_dead_letters)]
QueueName = Annotated[str, Path(pattern=r"^[a-z0-9-]{1,64}$", description="e.g. sms-normal")]


class DlqDepth(BaseModel):
    queue: str = Field(description="The work queue, without the resource prefix.")
    dlq: str
    depth: int
    in_flight: int


class DeadMessage(BaseModel):
    message_id: str
    error: str | None = None
    source_queue: str | None = None
    receive_count: str | None = None
    sent_at: str | None = None
    body: Any = Field(description="The message; notification addresses are masked.")


class RedriveRequest(BaseModel):
    message_ids: list[str] | None = Field(
        default=None, description="Only these messages; all of them when omitted."
    )


class RedriveResult(BaseModel):
    redriven: list[str]
    notifications_requeued: int
    not_found: list[str]
    events_reopened: list[str] = Field(
        default_factory=list,
        description="Events the router had given up on, reopened (FAILED → PROCESSING) "
        "before their message went back to the router.",
    )
    refused: dict[str, str] = Field(
        default_factory=dict,
        description="Messages left in the DLQ, by id, with why: an event FAILED for another "
        "reason than routing giving up is not reopened.",
    )


def _known(dead_letters: DeadLetters, queue: str) -> None:
    try:
        dead_letters.queue_name(queue)
    except UnknownQueue as exc:
        raise HTTPException(404, f"queue: {exc}") from None


@router.get("", response_model=list[DlqDepth], summary="Depth of every dead-letter queue")
async def list_dlqs(dead_letters: DeadLettersDep) -> list[dict[str, Any]]:
    return await run_in_threadpool(dead_letters.depths)


@router.get(
    "/{queue}/messages",
    response_model=list[DeadMessage],
    responses={404: {"model": Problem}},
    summary="Peek at dead letters without consuming them",
)
async def peek(
    queue: QueueName, dead_letters: DeadLettersDep, limit: Annotated[int, Query(ge=1, le=100)] = 10
) -> list[dict[str, Any]]:
    _known(dead_letters, queue)
    return await run_in_threadpool(dead_letters.peek, queue, limit)


@router.post(
    "/{queue}/redrive",
    response_model=RedriveResult,
    responses={404: {"model": Problem}},
    summary="Send dead letters back to their queue; notifications return to QUEUED",
)
async def redrive(
    queue: QueueName,
    dead_letters: DeadLettersDep,
    body: Annotated[RedriveRequest | None, Body()] = None,
) -> RedriveResult:
    _known(dead_letters, queue)
    ids = set(body.message_ids) if body and body.message_ids is not None else None
    report = await run_in_threadpool(dead_letters.redrive, queue, ids)
    return RedriveResult(
        redriven=report.redriven,
        notifications_requeued=report.notifications_requeued,
        not_found=report.not_found,
        events_reopened=report.events_reopened,
        refused=report.refused,
    )
