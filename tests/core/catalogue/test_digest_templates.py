"""The plural forms of like, comment and follow: a digest's variables (`core.digests`)
render "Bo and 2 others…", a digest of one reads as the single event."""

from __future__ import annotations

from typing import Any

import pytest

from core.catalogue.event_types import EVENT_TYPES
from core.catalogue.models import Event
from core.catalogue.templates import TemplateRenderer
from core.digests.items import ACTORS_MAX, DigestHead

RENDERER = TemplateRenderer()


def digest(type_: str, events: list[dict[str, Any]]) -> Event:
    """The event a digest of `events` (their data) sends, made as the close makes it."""
    spec = EVENT_TYPES[type_]
    head = DigestHead(
        pk="DIGEST#x",
        generation=0,
        status="CLOSED",
        version=len(events),
        tenant=None,
        user_id="u-1",
        event_type=type_,
        category=spec.category.value,
        priority=spec.priority.value,
        opened_at="2026-01-01T00:00:00.000000Z",
        closes_at="2026-01-01T00:10:00.000000Z",
        max_items=100,
        count=len(events),
        actors=tuple(dict.fromkeys(e["actor"] for e in events))[:ACTORS_MAX],
        items=tuple(events[:10]),
        first_at="2026-01-01T00:00:00.000000Z",
        last_at="2026-01-01T00:05:00.000000Z",
    )
    return Event(
        event_id="d",
        type=type_,
        category=spec.category,
        priority=spec.priority,
        user_id="u-1",
        data=head.template_data(),
        created_at="2026-01-01T00:10:00.000000Z",
        digest_id=head.ref,
    )


def likes(*actors: str) -> list[dict[str, Any]]:
    return [{"actor": a, "post": "p-7"} for a in actors]


@pytest.mark.parametrize(
    ("actors", "sms"),
    [
        (("Bo",), "Bo liked your post p-7."),
        (("Bo", "Ann"), "Bo and 1 other liked your post p-7."),
        (("Bo", "Ann", "Cy"), "Bo and 2 others liked your post p-7."),
        (("Bo", "Bo"), "Bo liked your post p-7."),  # one person, twice: no "others"
    ],
)
def test_likes_read_in_the_plural(actors: tuple[str, ...], sms: str) -> None:
    assert RENDERER.render(digest("like", likes(*actors)), "sms") == {"text": sms}


def test_past_ten_actors_the_others_are_counted_by_event() -> None:
    event = digest("like", likes(*[f"fan-{i}" for i in range(40)]))
    assert RENDERER.render(event, "sms")["text"] == "fan-0 and 39 others liked your post p-7."
    assert RENDERER.render(event, "push") == {
        "title": "40 new likes",
        "body": "fan-0 and 39 others liked your post p-7",
    }
    email = RENDERER.render(event, "email")
    assert email["subject"] == "fan-0 and 39 others liked your post"
    assert "and more" in email["text"]


def test_comments_list_the_first_ones() -> None:
    comments = [{"actor": a, "post": "p-7", "text": t} for a, t in [("Bo", "hi"), ("Ann", "yo")]]
    event = digest("comment", [*comments, {"actor": "Bo", "post": "p-7", "text": "again"}])
    assert RENDERER.render(event, "sms") == {"text": "Bo and 1 other left 3 comments on p-7."}
    email = RENDERER.render(event, "email")
    assert email["subject"] == "3 new comments on your post"
    assert 'Bo: "hi"' in email["text"] and 'Bo: "again"' in email["text"]
    assert "&#34;again&#34;" in email["html"] or "&quot;again&quot;" in email["html"]


def test_follows_read_in_the_plural() -> None:
    event = digest("follow", [{"actor": a} for a in ("Bo", "Ann", "Cy", "Di")])
    assert RENDERER.render(event, "sms") == {"text": "Bo and 3 others started following you."}
    assert RENDERER.render(event, "push")["title"] == "4 new followers"
    assert RENDERER.render(digest("follow", [{"actor": "Bo"}]), "sms") == {
        "text": "Bo started following you."
    }
