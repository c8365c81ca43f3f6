"""Rendering is bounded: parts are cut to what providers take, and a runaway template fails
its notification with the reason instead of stalling the router or filling memory."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from core.catalogue.event_types import CHANNELS, EVENT_TYPES
from core.catalogue.models import Event, NotificationMessage, NotificationStatus
from core.catalogue.templates import (
    CONTENT_MAX_BYTES,
    EMAIL_LAYOUT,
    PART_MAX,
    TEMPLATE_DIR,
    TemplateError,
    TemplateRenderer,
)
from core.directory.profiles import UserProfile
from listeners.planner import Recipient, plan

SQS_MESSAGE_MAX_BYTES = 256 * 1024
# About the largest `data` the API accepts (a 256 KiB body).
BIG = "x" * 250_000
# Ten billion empty iterations: only the time limit ends it.
BUSY = (
    "{% block push_body %}"
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    "{% endblock %}"
)


def event(type_: str, data: dict[str, Any]) -> Event:
    spec = EVENT_TYPES[type_]
    return Event(
        event_id="e-1",
        type=type_,
        category=spec.category,
        priority=spec.priority,
        user_id="u-1",
        data=data,
        created_at="2024-05-01T09:30:00.000000Z",
    )


def with_template(tmp_path: Path, name: str, source: str) -> Path:
    for shipped in ("_default.j2", EMAIL_LAYOUT):
        (tmp_path / shipped).write_text((TEMPLATE_DIR / shipped).read_text())
    (tmp_path / name).write_text(source)
    return tmp_path


@pytest.mark.parametrize(
    ("channel", "part"),
    [
        ("email", "subject"),
        ("email", "text"),
        ("push", "title"),
        ("push", "body"),
        ("chat", "title"),
        ("chat", "text"),
    ],
)
def test_a_part_over_its_providers_limit_is_cut_with_an_ellipsis(
    tmp_path: Path, channel: str, part: str
) -> None:
    block = f"{channel}_{part}"
    renderer = TemplateRenderer(
        with_template(tmp_path, "like.j2", f"{{% block {block} %}}{{{{ actor }}}}{{% endblock %}}")
    )
    content = renderer.render(event("like", {"actor": "y" * 100_000, "post": "p"}), channel)
    assert len(content[part]) == PART_MAX[block]
    assert content[part].endswith("…")


@pytest.mark.parametrize("type_", list(EVENT_TYPES))
def test_the_largest_data_fits_one_queue_message_or_fails_with_the_reason(type_: str) -> None:
    renderer = TemplateRenderer()
    data = {name: BIG for name in EVENT_TYPES[type_].variables} or {"note": BIG}
    for channel in CHANNELS:
        try:
            content = renderer.render(event(type_, data), channel, chat_format="slack")
        except TemplateError as exc:  # e.g. an HTML email repeating a 250 KB variable
            assert f"over {CONTENT_MAX_BYTES} bytes" in exc.reason
            continue
        message = NotificationMessage(
            notification_id=f"e-1:{channel}:u-1",
            event_id="e-1",
            event_type=type_,
            category=EVENT_TYPES[type_].category,
            priority=EVENT_TYPES[type_].priority,
            channel=channel,
            recipient_id="u-1",
            addresses=["+14155550123"],
            content=content,
            created_at="2024-05-01T09:30:00.000000Z",
        )
        assert len(message.model_dump_json().encode()) < SQS_MESSAGE_MAX_BYTES, (type_, channel)


def test_a_large_comment_is_cut_not_failed_on_every_channel() -> None:
    big = event("comment", {"actor": "Ana", "post": "p-1", "text": BIG})
    renderer = TemplateRenderer()
    for channel in CHANNELS:
        content = renderer.render(big, channel, chat_format="slack")
        assert any(value.endswith("…") for value in content.values()), channel


def test_a_template_writing_without_end_fails_at_the_content_limit(tmp_path: Path) -> None:
    runaway = (
        "{% for i in range(100000) %}{% for j in range(100000) %}{{ data }}{% endfor %}{% endfor %}"
    )
    renderer = TemplateRenderer(with_template(tmp_path, "like.html.j2", runaway))
    with pytest.raises(TemplateError) as raised:
        renderer.render(event("like", {"actor": "A", "post": "p"}), "email")
    assert raised.value.reason.startswith("template like/email: ")
    assert f"over {CONTENT_MAX_BYTES} bytes" in raised.value.reason


def test_a_template_looping_without_output_fails_at_the_time_limit(tmp_path: Path) -> None:
    renderer = TemplateRenderer(with_template(tmp_path, "like.j2", BUSY), render_seconds=0.05)
    with pytest.raises(TemplateError) as raised:
        renderer.render(event("like", {"actor": "A", "post": "p"}), "push")
    assert raised.value.reason == "template like/push: rendering took over 0.05s"


def test_compiling_a_template_spends_none_of_the_render_time(tmp_path: Path) -> None:
    # Compiling this template takes far longer than the limit; rendering its block does not.
    slow_to_compile = (
        "{% block push_body %}quick{% endblock %}{% block unused %}"
        + "".join(f"{{% if data.x{i} %}}{{{{ data.y{i} }}}}{{% endif %}}" for i in range(2000))
        + "{% endblock %}"
    )
    renderer = TemplateRenderer(
        with_template(tmp_path, "like.j2", slow_to_compile), render_seconds=0.05
    )
    body = renderer.render(event("like", {"actor": "A", "post": "p"}), "push")["body"]
    assert body == "quick"


def test_range_keeps_the_sandbox_cap(tmp_path: Path) -> None:
    huge = "{% block push_body %}{{ range(10**9)|length }}{% endblock %}"
    renderer = TemplateRenderer(with_template(tmp_path, "like.j2", huge))
    with pytest.raises(TemplateError, match="MAX_RANGE"):
        renderer.render(event("like", {"actor": "A", "post": "p"}), "push")


def test_range_still_behaves_as_a_sequence(tmp_path: Path) -> None:
    source = (
        "{% block push_body %}"
        "{{ range(3)|length }} {{ range(3)|list }} {{ range(5)[4] }}"
        "{% endblock %}"
    )
    renderer = TemplateRenderer(with_template(tmp_path, "like.j2", source))
    body = renderer.render(event("like", {"actor": "A", "post": "p"}), "push")["body"]
    assert body == "3 [0, 1, 2] 4"


def test_the_router_records_a_runaway_template_as_failed_with_the_reason(
    tmp_path: Path,
) -> None:
    renderer = TemplateRenderer(with_template(tmp_path, "like.j2", BUSY), render_seconds=0.25)
    profile = UserProfile(
        user_id="u-1",
        push_endpoints=["arn:aws:sns:us-east-1:123456789012:endpoint/GCM/app/1"],
        email="ana@example.com",
        created_at="2024-05-01T09:30:00.000000Z",
        updated_at="2024-05-01T09:30:00.000000Z",
    )
    planned = plan(
        event("like", {"actor": "A", "post": "p"}),
        [Recipient(profile)],
        renderer,
        datetime(2024, 5, 1, 12, tzinfo=UTC),
    )
    outcome = {n.message.channel: (n.status, n.reason) for n in planned}
    assert outcome["push"] == (
        NotificationStatus.FAILED,
        "template like/push: rendering took over 0.25s",
    )
    assert outcome["email"][0] is NotificationStatus.QUEUED
