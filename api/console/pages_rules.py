"""Alert rules: the list with each rule's last evaluation and state, a form to create or
edit one, a test run, and its evaluation history with a chart. Rules run the operator's
queries: like `/rules`, these pages are the operator's.

The form is drawn from `RuleIn`'s fields, so a field or kind added to rules later shows
up here unchanged: text and choices as inputs, anything structured as JSON. What the API
would refuse is refused with its own message, beside the field it names.
"""

from __future__ import annotations

import json
import re
import typing
from collections import Counter
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from alerting.evaluation import evaluate_rule, run_source
from alerting.rules import RULE_ID, Rule, RuleIn
from api.console import charts
from api.console.web import BASE, PageError, call, posted, redirect, render, viewer
from api.routes import rules
from core.catalogue.models import Event, utcnow
from core.catalogue.templates import PARTS, TemplateError, TemplateRenderer

router = APIRouter(prefix=BASE)
PAGE = 25
HISTORY = 50
#: The channels a test renders each event for (a rule's alert reaches people on these).
PREVIEW_CHANNELS = ("email", "sms", "chat")
RULE_ID_RE = re.compile(RULE_ID)


def form_fields() -> list[dict[str, Any]]:
    """Each RuleIn field as a form field: its name (the alias the API takes), widget,
    choices and help."""
    out = []
    for name, info in RuleIn.model_fields.items():
        annotation = info.annotation
        choices: list[str] = []
        if annotation is bool:
            widget, choices = "choice", ["true", "false"]
        elif typing.get_origin(annotation) is typing.Literal:
            widget, choices = "choice", [str(c) for c in typing.get_args(annotation)]
        elif annotation in (str, str | None):
            widget = "text"
        else:
            widget = "json"
        out.append(
            {
                "name": info.alias or name,
                "widget": widget,
                "choices": choices,
                "required": info.is_required(),
                "help": info.description or "",
            }
        )
    return out


def shown_values(rule: dict[str, Any]) -> dict[str, str]:
    """A rule (as the API answers it) as the form's text."""
    values = {}
    for field in form_fields():
        value = rule.get(field["name"])
        if value is None:
            continue
        if field["widget"] == "json":
            values[field["name"]] = json.dumps(value, indent=2)
        elif isinstance(value, bool):
            values[field["name"]] = "true" if value else "false"
        else:
            values[field["name"]] = str(value)
    return values


def parse_form(fields: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The body the form describes, and the fields that are not even JSON."""
    body: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for field in form_fields():
        raw = fields.get(field["name"], "").strip()
        if not raw:
            continue  # the default, or the API's "Field required"
        if field["widget"] == "json":
            try:
                body[field["name"]] = json.loads(raw)
            except (ValueError, RecursionError) as exc:
                problems[field["name"]] = f"not valid JSON: {exc}"
        elif field["choices"] == ["true", "false"]:
            body[field["name"]] = raw == "true"
        else:
            body[field["name"]] = raw
    return body, problems


def field_problems(messages: list[tuple[tuple[Any, ...], str]]) -> dict[str, str]:
    """Messages by the form field they name (the first part of their location); those of
    the rule as a whole under "form"."""
    names = {f["name"] for f in form_fields()}
    problems: dict[str, str] = {}
    for loc, message in messages:
        field = str(loc[0]) if loc and str(loc[0]) in names else "form"
        rest = ".".join(str(p) for p in loc[1:]) if field != "form" else ""
        text = f"{rest}: {message}" if rest else message
        problems[field] = f"{problems[field]}; {text}" if field in problems else text
    return problems


def _detail_loc(detail: str) -> tuple[str, ...]:
    """An HTTPException's message names its field first (`source.datasource: ...`)."""
    head = detail.split(":", 1)[0]
    return tuple(head.split(".")) if " " not in head else ()


def state_summary(state: dict[str, Any]) -> str:
    active = state.get("alerts") or {}
    kinds = Counter(
        str(a.get("state", "active")) if isinstance(a, dict) else "active" for a in active.values()
    )
    return ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) or "no alert open"


def _rule_rows(services: Any, items: list[Any]) -> list[dict[str, Any]]:
    rows = []
    for rule in items:
        state, _, last_run = services.rules.state(rule.id)
        latest, _ = services.rules.evaluations(rule.id, 1, None)
        rows.append(
            {
                "rule": rule,
                "state": state_summary(state),
                "last": latest[0] if latest else None,
                "last_run": last_run,
            }
        )
    return rows


@router.get("/rules")
async def rule_list(
    request: Request, cursor: Annotated[str, Query(max_length=2048)] = ""
) -> Response:
    found = await viewer(request, "operator")
    page = await call(rules.list_rules(found.services, PAGE, cursor or None))
    rows = await run_in_threadpool(_rule_rows, found.services, page.items)
    return render(request, "rules.html", found, rows=rows, next_cursor=page.next_cursor)


def _rule_id(rule_id: str) -> str:
    if not RULE_ID_RE.match(rule_id):
        raise PageError(404, f"rule_id: no rule {rule_id!r}")
    return rule_id


def _edit_page(
    request: Request,
    found: Any,
    rule_id: str | None,
    values: dict[str, str],
    problems: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    return render(
        request,
        "rule_edit.html",
        found,
        status=status,
        rule_id=rule_id,
        fields=form_fields(),
        values=values,
        problems=problems or {},
    )


@router.get("/rules/new")
async def new_rule(request: Request) -> Response:
    found = await viewer(request, "operator")
    return _edit_page(request, found, None, {"schedule": "every 5m"})


@router.get("/rules/{rule_id}/edit")
async def edit_rule(request: Request, rule_id: str) -> Response:
    found = await viewer(request, "operator")
    rule = await call(rules.get_rule(_rule_id(rule_id), found.services))
    shown = shown_values(rule.model_dump(by_alias=True, mode="json", exclude_none=True))
    return _edit_page(request, found, rule_id, shown)


@router.post("/rules")
async def save_rule(request: Request) -> Response:
    """Create (a new id) or replace a rule; the form comes back with the API's messages
    beside the fields when it would refuse it."""
    found, fields = await posted(request, "operator")
    rule_id = fields.get("rule_id", "").strip()
    editing = fields.get("editing") == "yes"
    body, problems = parse_form(fields)
    if not RULE_ID_RE.match(rule_id):
        problems["rule_id"] = "letters, digits, '.', '_' and '-', 1 to 64 of them"
    parsed: RuleIn | None = None
    if not problems:
        try:
            parsed = RuleIn.model_validate(body)
        except ValidationError as exc:
            problems = field_problems([(tuple(e["loc"]), str(e["msg"])) for e in exc.errors()])
    if parsed is not None:
        try:
            await call(rules.put_rule(rule_id, parsed, found.services, Response()))
        except PageError as exc:
            if exc.status != 422:
                raise
            problems = field_problems([(_detail_loc(exc.message), exc.message)])
    if problems:
        shown = {k: v for k, v in fields.items() if k != "csrf"}
        return _edit_page(request, found, rule_id if editing else None, shown, problems, 422)
    return redirect(f"{BASE}/rules/{rule_id}")


@router.get("/rules/{rule_id}")
async def rule_page(
    request: Request, rule_id: str, cursor: Annotated[str, Query(max_length=2048)] = ""
) -> Response:
    found = await viewer(request, "operator")
    rule = await call(rules.get_rule(_rule_id(rule_id), found.services))
    history = await call(rules.list_evaluations(rule_id, found.services, HISTORY, cursor or None))
    points = [
        (
            str(e.get("evaluated_at", e.get("run", ""))),
            float(e.get("duration_ms") or 0),
            str(e.get("outcome", "unknown")),
        )
        for e in reversed(history.items)
    ]
    chart = charts.columns("Evaluations, oldest to newest: duration (ms) by outcome", points, " ms")
    outcomes = Counter(str(e.get("outcome", "unknown")) for e in history.items)
    state, _, last_run = await run_in_threadpool(found.services.rules.state, rule_id)
    return render(
        request,
        "rule.html",
        found,
        rule=rule,
        rule_json=rule.model_dump(by_alias=True, mode="json"),
        history=history,
        chart=chart,
        outcomes=sorted(outcomes.items()),
        state=state_summary(state),
        last_run=last_run,
        test=None,
    )


def _rendered(event: Event, renderer: TemplateRenderer) -> list[dict[str, Any]]:
    """The event as each preview channel would show it, or why it cannot be rendered."""
    out = []
    for channel in PREVIEW_CHANNELS:
        try:
            content = renderer.render(event, channel, recipient={"user_id": "preview"})
            parts = {k: v for k, v in content.items() if k in PARTS[channel]}
            out.append({"channel": channel, "parts": parts, "error": None})
        except TemplateError as exc:
            out.append({"channel": channel, "parts": {}, "error": exc.reason})
    return out


def run_test(services: Any, rule: Rule) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """What POST /rules/{id}/test answers (nothing sent), and each event it would send
    rendered for email, SMS and chat: one run of the rule's source for both."""
    state, _, _ = services.rules.state(rule.id)
    result = run_source(rule, services.datasources, services.settings.http_check_timeout_seconds)
    evaluation = evaluate_rule(rule, result, state, utcnow(), "test")
    renderer = TemplateRenderer()
    summary = {
        "outcome": evaluation.outcome,
        "summary": evaluation.summary,
        "duration_ms": round(evaluation.duration_s * 1000, 1),
        "values": evaluation.values,
        "truncated": evaluation.truncated,
        "error": evaluation.error,
    }
    sends = [
        {"event": rules._preview(e, renderer), "rendered": _rendered(e, renderer)}
        for e in evaluation.events
    ]
    return summary, sends


@router.post("/rules/{rule_id}/test")
async def test_rule(request: Request, rule_id: str) -> Response:
    """Evaluate now, send nothing: the rows and what each event would render."""
    found, _ = await posted(request, "operator")
    rule = await call(rules.get_rule(_rule_id(rule_id), found.services))
    summary, sends = await run_in_threadpool(run_test, found.services, rule)
    return render(request, "rule_test.html", found, rule=rule, test=summary, sends=sends)
