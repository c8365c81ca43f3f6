"""Alert rules: CRUD, their evaluations, and a test run that sends nothing (or one test)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from alerting.evaluation import Evaluation, evaluate_rule, rule_event, run_source
from alerting.inline import chat_url_problem
from alerting.listen_connection import datasource_backend
from alerting.rule_store import RuleConflict
from alerting.rules import RULE_ID, Rule, RuleIn
from api.deps import ServicesDep
from api.schemas import Problem
from api.services import Services
from core.catalogue.models import Event, utcnow
from core.catalogue.templates import TemplateError, TemplateRenderer

router = APIRouter(prefix="/rules", tags=["rules"])

RuleId = Annotated[str, Path(pattern=RULE_ID)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such rule."}
}
WRITE_ATTEMPTS = 3


class RulePage(BaseModel):
    items: list[Rule]
    next_cursor: str | None


class EvaluationPage(BaseModel):
    items: list[dict[str, Any]] = Field(
        description="Newest first: run, evaluated_at, outcome (ok|pending|firing|error|"
        "skipped), "
        "summary, values, duration_ms, error, events, skipped_runs, lag_ms, trigger "
        "(schedule|notify|connect: what asked for the run)."
    )
    next_cursor: str | None


class WouldSend(BaseModel):
    type: str
    action: str | None
    dedupe_key: str | None
    priority: str
    recipient: str = Field(description="user:<id>, topic:<topic> or inline (masked).")
    email_subject: str | None = None
    email_text: str | None = None
    render_error: str | None = None


class TestResult(BaseModel):
    outcome: str
    summary: str
    duration_ms: float
    values: list[dict[str, Any]]
    truncated: bool
    error: str | None
    would_send: list[WouldSend]
    sent: list[str] = Field(default_factory=list, description="Test events sent (send=true).")


def _check_datasource(services: Services, body: RuleIn) -> None:
    if body.recipients.to is not None:
        patterns = services.settings.chat_webhook_host_patterns
        problem = chat_url_problem(body.recipients.to, patterns)
        if problem is not None:
            raise HTTPException(422, f"recipients.{problem}")
    source = body.source
    if source.kind == "sql" and source.datasource not in services.datasources.names():
        known = ", ".join(services.datasources.names()) or "none configured"
        raise HTTPException(
            422, f"source.datasource: unknown data source {source.datasource!r} (known: {known})"
        )
    if body.listen is not None and source.kind == "sql":
        backend = datasource_backend(services.datasources, source.datasource)
        if backend != "postgresql":
            raise HTTPException(
                422,
                f"listen: data source {source.datasource!r} is {backend or 'unreadable'}, "
                "not PostgreSQL: only PostgreSQL delivers NOTIFY",
            )


@router.put(
    "/{rule_id}",
    response_model=Rule,
    status_code=status.HTTP_200_OK,
    responses={
        201: {"model": Rule, "description": "Created."},
        409: {"model": Problem, "description": "Changed concurrently; try again."},
        422: {"model": Problem, "description": "Invalid rule; the message names the field."},
    },
    summary="Create or replace an alert rule",
)
async def put_rule(
    rule_id: RuleId, body: RuleIn, services: ServicesDep, response: Response
) -> Rule:
    await run_in_threadpool(_check_datasource, services, body)  # may read a secret
    for _ in range(WRITE_ATTEMPTS):
        try:
            rule, created = await run_in_threadpool(services.rules.put, rule_id, body)
        except RuleConflict:
            continue
        if created:
            response.status_code = status.HTTP_201_CREATED
        return rule
    raise HTTPException(409, f"rule_id: rule {rule_id!r} changed concurrently; try again")


@router.get("", response_model=RulePage, summary="Rules by id")
async def list_rules(
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> RulePage:
    rules, next_cursor = await run_in_threadpool(services.rules.page, limit, cursor)
    return RulePage(items=rules, next_cursor=next_cursor)


@router.get("/{rule_id}", response_model=Rule, responses=NOT_FOUND, summary="One rule")
async def get_rule(rule_id: RuleId, services: ServicesDep) -> Rule:
    rule = await run_in_threadpool(services.rules.get, rule_id)
    if rule is None:
        raise HTTPException(404, f"rule_id: no rule {rule_id!r}")
    return rule


@router.delete(
    "/{rule_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=NOT_FOUND,
    summary="Delete a rule and its schedule (its open alerts stay until resolved by hand)",
)
async def delete_rule(rule_id: RuleId, services: ServicesDep) -> Response:
    for _ in range(WRITE_ATTEMPTS):
        try:
            found = await run_in_threadpool(services.rules.delete, rule_id)
        except RuleConflict:
            continue
        if not found:
            raise HTTPException(404, f"rule_id: no rule {rule_id!r}")
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    raise HTTPException(409, f"rule_id: rule {rule_id!r} changed concurrently; try again")


@router.get(
    "/{rule_id}/evaluations",
    response_model=EvaluationPage,
    responses=NOT_FOUND,
    summary="The rule's evaluations, newest first",
)
async def list_evaluations(
    rule_id: RuleId,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> EvaluationPage:
    if await run_in_threadpool(services.rules.get_item, rule_id) is None:
        raise HTTPException(404, f"rule_id: no rule {rule_id!r}")
    items, next_cursor = await run_in_threadpool(services.rules.evaluations, rule_id, limit, cursor)
    return EvaluationPage(items=items, next_cursor=next_cursor)


def _preview(event: Event, renderer: TemplateRenderer) -> WouldSend:
    if event.user_id:
        recipient = f"user:{event.user_id}"
    elif event.topic:
        recipient = f"topic:{event.topic}"
    else:
        recipient = "inline: " + ", ".join(f"{len(v)} {k}" for k, v in (event.to or {}).items())
    out = WouldSend(
        type=event.type,
        action=event.action,
        dedupe_key=event.dedupe_key,
        priority=event.priority.value,
        recipient=recipient,
    )
    try:
        content = renderer.render(event, "email", recipient={"user_id": "preview"})
        out.email_subject, out.email_text = content.get("subject"), content.get("text")
    except TemplateError as exc:
        out.render_error = exc.reason
    return out


def _test(services: Services, rule: Rule, send: bool) -> TestResult:
    state, _, _ = services.rules.state(rule.id)
    result = run_source(rule, services.datasources, services.settings.http_check_timeout_seconds)
    now = utcnow()
    evaluation: Evaluation = evaluate_rule(rule, result, state, now, "test")
    renderer = TemplateRenderer()
    sent: list[str] = []
    if send:
        trigger = evaluation.events[0].data["summary"] if evaluation.events else evaluation.summary
        test_events = rule_event(
            rule, f"test-{uuid.uuid4()}", now, "", "trigger", result.rows, trigger, test=True
        )
        outcomes = services.intake.accept_now(test_events)
        for event, outcome in zip(test_events, outcomes, strict=True):
            if outcome is not None:
                raise HTTPException(503, "storage unavailable; the test was not sent")
            sent.append(event.event_id)
    return TestResult(
        outcome=evaluation.outcome,
        summary=evaluation.summary,
        duration_ms=round(evaluation.duration_s * 1000, 1),
        values=evaluation.values,
        truncated=evaluation.truncated,
        error=evaluation.error,
        would_send=[_preview(e, renderer) for e in evaluation.events],
        sent=sent,
    )


@router.post(
    "/{rule_id}/test",
    response_model=TestResult,
    responses=NOT_FOUND,
    summary="Evaluate now and show what would be sent; send=true sends one test notification",
)
async def test_rule(rule_id: RuleId, services: ServicesDep, send: bool = False) -> TestResult:
    rule = await run_in_threadpool(services.rules.get, rule_id)
    if rule is None:
        raise HTTPException(404, f"rule_id: no rule {rule_id!r}")
    return await run_in_threadpool(_test, services, rule, send)
