"""Alerts (open and resolved, acknowledge) and silences (create, prefilled from an alert;
active and recently expired; expire now), through the JSON routes' functions."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from alerting.durations import parse_duration
from alerting.silences import Matcher, SilenceIn
from api.console.web import BASE, PageError, call, posted, redirect, render, viewer
from api.routes import alerts
from core.catalogue.models import iso, utcnow

router = APIRouter(prefix=BASE)
PAGE = 25
ALERT_ID = re.compile(r"^[0-9a-f]{24}-[0-9]{1,8}$")
SILENCE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: Matcher rows the silence form offers.
MATCHER_ROWS = 3
#: Expired silences are listed this far back.
EXPIRED_SHOWN = timedelta(days=7)
MATCHER_NAMES = list(Matcher.model_fields["name"].annotation.__args__)  # type: ignore[union-attr]
MATCHER_OPS = list(Matcher.model_fields["op"].annotation.__args__)  # type: ignore[union-attr]


@router.get("/alerts")
async def alert_list(
    request: Request,
    state: Literal["open", "resolved", ""] = "",
    cursor: Annotated[str, Query(max_length=2048)] = "",
    acked: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    found = await viewer(request, "events:read")
    page = await call(
        alerts.list_alerts(found.services, found.tenant, state or None, PAGE, cursor or None)
    )
    return render(request, "alerts.html", found, page=page, state=state, acked=acked, cursor=cursor)


@router.post("/alerts/{alert_id}/ack")
async def acknowledge(request: Request, alert_id: str) -> Response:
    found, _ = await posted(request, "events:write")
    if not ALERT_ID.match(alert_id):
        raise PageError(404, f"alert_id: no alert {alert_id!r}")
    await call(alerts.ack_alert(alert_id, found.services, found.tenant))
    return redirect(f"{BASE}/alerts?acked={alert_id}")


async def _silences_page(
    request: Request,
    prefill: dict[str, str],
    problems: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    found = await viewer(request, "events:read")
    now = utcnow()
    recent = await run_in_threadpool(
        found.services.silences.unexpired, now - EXPIRED_SHOWN, found.tenant.name
    )
    active = [s for s in recent if s.ends_at > iso(now)]
    expired = [s for s in recent if s.ends_at <= iso(now)]
    return render(
        request,
        "silences.html",
        found,
        status=status,
        active=active,
        expired=expired,
        prefill=prefill,
        problems=problems or {},
        rows=range(MATCHER_ROWS),
        names=MATCHER_NAMES,
        ops=MATCHER_OPS,
    )


@router.get("/silences")
async def silences(
    request: Request,
    type: Annotated[str, Query(max_length=256)] = "",
    dedupe_key: Annotated[str, Query(max_length=256)] = "",
) -> Response:
    """The silences, and a form prefilled with an alert's type and dedupe key."""
    prefill = {"duration": "2h"}
    for row, (name, value) in enumerate(
        (n, v) for n, v in (("type", type), ("dedupe_key", dedupe_key)) if v
    ):
        prefill |= {f"m{row}_name": name, f"m{row}_op": "=", f"m{row}_value": value}
    return await _silences_page(request, prefill)


def _silence_body(fields: dict[str, str], created_by: str) -> dict[str, Any]:
    matchers = [
        {"name": fields.get(f"m{i}_name", ""), "op": fields.get(f"m{i}_op", "="), "value": v}
        for i in range(MATCHER_ROWS)
        if (v := fields.get(f"m{i}_value", "").strip())
    ]
    duration = fields.get("duration", "").strip()
    try:
        seconds = parse_duration(duration)
    except ValueError as exc:
        raise PageError(422, f"duration: {exc}") from None
    return {
        "matchers": matchers,
        "ends_at": iso(utcnow() + timedelta(seconds=seconds)),
        "comment": fields.get("comment", ""),
        "created_by": created_by,
    }


def _field_of(loc: tuple[Any, ...]) -> str:
    """The form field a SilenceIn error belongs to (matchers.<i>.<name> → m<i>_<name>)."""
    if len(loc) >= 2 and loc[0] == "matchers" and isinstance(loc[1], int):
        return f"m{loc[1]}_{loc[2] if len(loc) > 2 else 'value'}"
    if loc and loc[0] == "ends_at":
        return "duration"
    return str(loc[0]) if loc else "form"


@router.post("/silences")
async def create_silence(request: Request) -> Response:
    found, fields = await posted(request, "events:write")
    try:
        body = SilenceIn.model_validate(_silence_body(fields, found.key.name))
    except PageError as exc:
        return await _silences_page(request, fields, {"duration": exc.message}, 422)
    except ValidationError as exc:
        problems = {_field_of(tuple(e["loc"])): str(e["msg"]) for e in exc.errors()}
        return await _silences_page(request, fields, problems, 422)
    await call(alerts.put_silence(body, found.services, found.tenant))
    return redirect(f"{BASE}/silences")


@router.post("/silences/{silence_id}/expire")
async def expire_silence(request: Request, silence_id: str) -> Response:
    found, _ = await posted(request, "events:write")
    if not SILENCE_ID.match(silence_id):
        raise PageError(404, f"silence_id: no silence {silence_id!r}")
    await call(alerts.expire_silence(silence_id, found.services, found.tenant))
    return redirect(f"{BASE}/silences")
