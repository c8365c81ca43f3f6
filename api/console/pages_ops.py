"""Overview (the numbers of GET /stats, charted and refreshed) and dead letters (depths,
masked peeks, redrive after a confirmation). Dead letters hold every tenant's messages:
like `/dlq`, they are the operator's."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api.console import charts
from api.console.web import BASE, PageError, call, posted, render, viewer
from api.routes import dlq, stats

router = APIRouter(prefix=BASE)
#: Seconds between the overview's refreshes.
REFRESH_SECONDS = 5
QUEUE = re.compile(r"^[a-z0-9-]{1,64}$")
MESSAGE_ID_MAX = 128


def queue_label(name: str, prefix: str) -> str:
    """A DLQ as the console names queues: `herald-sms-normal-dlq` is `sms-normal`."""
    name = name.removeprefix(f"{prefix}-") if prefix else name
    return name.removesuffix("-dlq")


def overview_charts(summary: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Charts of a /stats answer: events by status, sends by channel and outcome, latency
    quantiles and DLQ depths."""
    events = summary.get("events", {})
    sends = [
        (f"{channel} {outcome}", float(count))
        for channel, per in sorted(summary.get("notifications", {}).items())
        for outcome, count in sorted(per.get("sends", {}).items())
    ]
    latency = [
        (f"{channel} {q}", values.get(q))
        for channel, values in sorted(summary.get("end_to_end_seconds", {}).items())
        for q in ("p50", "p99")
    ]
    depths = [
        (queue_label(name, prefix), d) for name, d in sorted(summary.get("dlq_depths", {}).items())
    ]
    return {
        "events": charts.bars(
            "Events by status, last hour",
            [(s, float(n)) for s, n in events.get("counts", {}).items()],
        ),
        "sends": charts.bars("Provider calls by channel and outcome", sends),
        "latency": charts.bars("End-to-end latency by channel", latency, " s"),
        "dlq": charts.bars("Messages in each dead-letter queue", depths),
    }


async def _overview(request: Request, template: str) -> Response:
    found = await viewer(request, "events:read")
    summary = await call(stats.get_stats(found.services, found.tenant))
    return render(
        request,
        template,
        found,
        summary=summary,
        charts=overview_charts(summary, found.services.settings.resource_prefix),
        refresh_seconds=REFRESH_SECONDS,
    )


@router.get("")
async def overview(request: Request) -> Response:
    return await _overview(request, "overview.html")


@router.get("/overview/panel")
async def overview_panel(request: Request) -> Response:
    """The overview's numbers alone, which its page fetches every few seconds."""
    return await _overview(request, "_overview_panel.html")


def _queue(queue: str) -> str:
    if not QUEUE.match(queue):
        raise PageError(404, f"queue: no dead-letter queue {queue!r}")
    return queue


@router.get("/dead-letters")
async def dead_letters(request: Request) -> Response:
    found = await viewer(request, "operator")
    letters = await dlq.get_dead_letters(found.services)
    depths = await call(dlq.list_dlqs(letters))
    chart = charts.bars("Dead letters per queue", [(d["queue"], float(d["depth"])) for d in depths])
    return render(request, "dead_letters.html", found, depths=depths, chart=chart)


@router.get("/dead-letters/{queue}")
async def dead_letter_messages(request: Request, queue: str) -> Response:
    found = await viewer(request, "operator")
    letters = await dlq.get_dead_letters(found.services)
    messages = await call(dlq.peek(_queue(queue), letters, 10))
    return render(request, "dead_letter_queue.html", found, queue=queue, messages=messages)


@router.get("/dead-letters/{queue}/redrive")
async def confirm_redrive(
    request: Request,
    queue: str,
    message_id: Annotated[str | None, Query(max_length=MESSAGE_ID_MAX)] = None,
) -> Response:
    """The confirmation a redrive asks for: nothing is sent back until this form is posted."""
    found = await viewer(request, "operator")
    return render(
        request, "redrive_confirm.html", found, queue=_queue(queue), message_id=message_id
    )


@router.post("/dead-letters/{queue}/redrive")
async def redrive(request: Request, queue: str) -> Response:
    found, fields = await posted(request, "operator")
    if fields.get("confirm") != "yes":
        raise PageError(422, "confirm: tick the box to confirm the redrive")
    message_id = fields.get("message_id") or None
    if message_id is not None and len(message_id) > MESSAGE_ID_MAX:
        raise PageError(422, f"message_id: at most {MESSAGE_ID_MAX} characters")
    letters = await dlq.get_dead_letters(found.services)
    body = dlq.RedriveRequest(message_ids=[message_id] if message_id else None)
    result = await call(dlq.redrive(_queue(queue), letters, body))
    return render(request, "redrive_done.html", found, queue=queue, result=result)
