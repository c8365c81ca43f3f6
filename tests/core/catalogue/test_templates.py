"""The shipped templates render every catalogue type on every channel; broken ones fail
with a reason instead of raising anything else."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.catalogue import doc as catalogue_doc
from core.catalogue.event_types import CHANNELS, EVENT_TYPES, Priority
from core.catalogue.models import Event
from core.catalogue.templates import TEMPLATE_DIR, TEXT_MAX, TemplateError, TemplateRenderer

OWN_BLOCKS = (
    "sms_text",
    "email_subject",
    "email_text",
    "push_title",
    "push_body",
    "chat_title",
    "chat_text",
)
EXPECTED_PARTS = {
    "sms": {"text"},
    "whatsapp": {"text"},
    "email": {"subject", "text", "html"},
    "push": {"title", "body"},
    "chat": {"title", "text", "severity", "format"},
}


def event(type_: str, data: dict[str, object], **fields: object) -> Event:
    spec = EVENT_TYPES.get(type_, EVENT_TYPES["like"])
    values: dict[str, object] = {
        "event_id": "e-1",
        "type": type_,
        "category": spec.category,
        "priority": spec.priority,
        "user_id": "u-1",
        "data": data,
        "created_at": "2024-05-01T09:30:00.000000Z",
    }
    values.update(fields)
    return Event.model_validate(values)


def sample(type_: str) -> Event:
    return event(type_, {v: f"[{v}]" for v in EVENT_TYPES[type_].variables})


@pytest.fixture(scope="module")
def renderer() -> TemplateRenderer:
    return TemplateRenderer()


@pytest.mark.parametrize("type_", list(EVENT_TYPES))
def test_every_type_has_its_own_text_and_renders_on_every_channel(
    renderer: TemplateRenderer, type_: str
) -> None:
    (own, *_) = renderer.chain(type_)  # the first template of the chain is the type's own
    assert own.name == f"{type_}.j2"
    for block in OWN_BLOCKS:
        assert block in own.blocks, f"{type_} lacks {block}"
    variables = EVENT_TYPES[type_].variables
    for channel in CHANNELS:
        content = renderer.render(sample(type_), channel)
        assert set(content) == EXPECTED_PARTS[channel]
        assert all(content.values()), f"{type_}/{channel} rendered an empty part: {content}"
        rendered = " ".join(content.values())
        if variables and channel != "push":  # push is short; the rest mention the data
            assert any(f"[{v}]" in rendered for v in variables), f"{type_}/{channel}"


def test_comment_renders_its_data_per_channel(renderer: TemplateRenderer) -> None:
    comment = event("comment", {"actor": "Ana", "post": "p-7", "text": "Nice!"})
    assert renderer.render(comment, "sms") == {"text": 'Ana commented on p-7: "Nice!"'}
    assert renderer.render(comment, "push") == {"title": "Ana commented", "body": '"Nice!" on p-7'}
    email = renderer.render(comment, "email")
    assert email["subject"] == "Ana commented on your post"
    assert "Nice!" in email["text"] and "Nice!" in email["html"]
    chat = renderer.render(comment, "chat", chat_format="teams")
    assert chat["format"] == "teams" and chat["severity"] == "normal"


def test_html_is_escaped_only_in_the_html_part(renderer: TemplateRenderer) -> None:
    comment = event("comment", {"actor": "<b>Ana</b>", "post": "p-7", "text": "<script>x</script>"})
    email = renderer.render(comment, "email")
    assert "<script>" in email["text"]
    assert "<script>" not in email["html"] and "&lt;script&gt;" in email["html"]
    assert renderer.render(comment, "sms")["text"].startswith("<b>Ana</b>")


def test_a_type_can_ship_its_own_html_email(renderer: TemplateRenderer) -> None:
    reset = event("account.password_reset", {"reset_url": "https://example.com/r?a=1&b=2"})
    html = renderer.render(reset, "email")["html"]
    assert 'href="https://example.com/r?a=1&amp;b=2"' in html


def test_a_missing_variable_names_the_template_and_the_variable(
    renderer: TemplateRenderer,
) -> None:
    with pytest.raises(TemplateError) as raised:
        renderer.render(event("comment", {"actor": "Ana"}), "sms")
    assert raised.value.reason == "template comment/sms: 'post' is undefined"


def test_long_sms_and_whatsapp_text_is_cut_with_an_ellipsis(renderer: TemplateRenderer) -> None:
    long = event("comment", {"actor": "Ana", "post": "p", "text": "x" * 5000})
    for channel in ("sms", "whatsapp"):
        text = renderer.render(long, channel)["text"]
        assert len(text) == TEXT_MAX and text.endswith("…")


def test_chat_severity_is_the_events_priority(renderer: TemplateRenderer) -> None:
    outage = event("alert.datasource_down", {"datasource": "orders-db"})
    assert renderer.render(outage, "chat")["severity"] == "critical"
    lowered = event("alert.datasource_down", {"datasource": "x"}, priority=Priority.low)
    assert renderer.render(lowered, "chat")["severity"] == "low"


def test_a_type_without_a_template_falls_back_to_the_generic_one(tmp_path: Path) -> None:
    (tmp_path / "_default.j2").write_text((TEMPLATE_DIR / "_default.j2").read_text())
    (tmp_path / "_email.html.j2").write_text((TEMPLATE_DIR / "_email.html.j2").read_text())
    renderer = TemplateRenderer(tmp_path)
    like = event("like", {"actor": "Ana", "post": "p-7"})
    assert renderer.render(like, "sms") == {"text": "Someone liked a post (actor: Ana, post: p-7)"}
    assert renderer.render(like, "push")["title"] == "Someone liked a post"


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("{% block sms_text %}{{ actor.__class__.__mro__ }}{% endblock %}", "unsafe"),
        ("{% block sms_text %}{{ actor }{% endblock %}", "line 1"),
        ("{% block sms_text %}{{ 1 / 0 }}{% endblock %}", "division by zero"),
    ],
)
def test_a_broken_or_unsafe_template_is_a_template_error(
    tmp_path: Path, source: str, words: str
) -> None:
    (tmp_path / "like.j2").write_text(source)
    renderer = TemplateRenderer(tmp_path)
    with pytest.raises(TemplateError) as raised:
        renderer.render(event("like", {"actor": "Ana", "post": "p"}), "sms")
    assert raised.value.reason.startswith("template like/sms: ")
    assert words in raised.value.reason


def test_docs_events_md_matches_the_catalogue() -> None:
    current = catalogue_doc.DOC.read_text(encoding="utf-8")
    assert current == catalogue_doc.with_catalogue(current), "run python -m core.catalogue.doc"
