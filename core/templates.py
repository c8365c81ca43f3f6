"""Rendering an event into each channel's content with the templates in `core/templates/`.

Layout (see docs/events.md, "Adding a template"):

    core/templates/<event type>.j2       one block per channel part:
        sms_text  whatsapp_text  email_subject  email_text  push_title  push_body
        chat_title  chat_text
    core/templates/<event type>.html.j2  optional HTML email (autoescaped)
    core/templates/_default.j2           the fallback for any block a type leaves out
    core/templates/_email.html.j2        the HTML email layout (autoescaped); HTML templates
                                         also see `content` (the rendered subject and text)

`whatsapp_text` falls back to `sms_text`. Blocks are rendered one at a time, so a block can
use the variables (the event's `data` keys, plus `event`, `data` and `recipient`) but not
`{% set %}` or macros defined outside it.

Templates are sandboxed (a template cannot reach Python internals) and strict: a missing
variable is an error, never an empty string, so a broken template fails one notification
with a clear reason instead of sending half a sentence.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from core.catalogue import EVENT_TYPES
from core.models import Event

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
DEFAULT_TEMPLATE = "_default.j2"
EMAIL_LAYOUT = "_email.html.j2"
TEXT_MAX = 1600  # Twilio's limit for one SMS / WhatsApp body
ELLIPSIS = "…"

# Content keys per channel (what workers read), each rendered from `<channel>_<part>`.
PARTS: dict[str, tuple[str, ...]] = {
    "sms": ("text",),
    "whatsapp": ("text",),
    "email": ("subject", "text"),
    "push": ("title", "body"),
    "chat": ("title", "text"),
}
BLOCK_FALLBACKS: dict[str, tuple[str, ...]] = {"whatsapp_text": ("sms_text",)}
ONE_LINE = frozenset({"email_subject", "push_title", "chat_title"})
RESERVED_VARIABLES = ("event", "data", "recipient")

_SPACES = re.compile(r"\s+")


class TemplateError(Exception):
    """A template could not render; `reason` says which one and why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _autoescape(name: str | None) -> bool:
    return bool(name and name.endswith(".html.j2"))


def truncate(text: str, limit: int = TEXT_MAX) -> str:
    return text if len(text) <= limit else text[: limit - len(ELLIPSIS)] + ELLIPSIS


def variables(event: Event, recipient: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What a template sees: `data`'s keys, then `event`, `data` and `recipient`, which win
    over data keys of the same name."""
    spec = EVENT_TYPES.get(event.type)
    metadata = {
        "event_id": event.event_id,
        "type": event.type,
        "category": event.category.value,
        "priority": event.priority.value,
        "summary": spec.summary if spec else event.type,
        "user_id": event.user_id,
        "topic": event.topic,
        "created_at": event.created_at,
    }
    return {
        **event.data,
        "event": metadata,
        "data": event.data,
        "recipient": dict(recipient or {}),
    }


class TemplateRenderer:
    """Renders events with one sandboxed environment; compiled templates are cached."""

    def __init__(self, directory: Path = TEMPLATE_DIR) -> None:
        self.env = SandboxedEnvironment(
            loader=jinja2.FileSystemLoader(directory),
            undefined=StrictUndefined,
            autoescape=_autoescape,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._chains: dict[str, list[jinja2.Template]] = {}

    def chain(self, event_type: str) -> list[jinja2.Template]:
        """The templates whose blocks serve this type, most specific first."""
        if event_type not in self._chains:
            chain = []
            for name in (f"{event_type}.j2", DEFAULT_TEMPLATE):
                try:
                    chain.append(self.env.get_template(name))
                except jinja2.TemplateNotFound:
                    continue
            self._chains[event_type] = chain
        return self._chains[event_type]

    def source_of(self, event_type: str, block: str) -> str | None:
        """The name of the template that supplies `block` for this type (docs, tests)."""
        for template in self.chain(event_type):
            for name in (block, *BLOCK_FALLBACKS.get(block, ())):
                if name in template.blocks:
                    return template.name
        return None

    def render(
        self,
        event: Event,
        channel: str,
        *,
        recipient: Mapping[str, Any] | None = None,
        chat_format: str | None = None,
    ) -> dict[str, str]:
        """The content of `event` on `channel`; raises TemplateError with the reason."""
        if channel not in PARTS:
            raise TemplateError(f"template {event.type}/{channel}: no such channel")
        where = f"template {event.type}/{channel}"
        try:
            context = variables(event, recipient)
            content = {
                part: self._block(event.type, f"{channel}_{part}", context)
                for part in PARTS[channel]
            }
            if channel in ("sms", "whatsapp"):
                content["text"] = truncate(content["text"])
            elif channel == "email":
                content["html"] = self._email_html(event.type, {**context, "content": content})
            elif channel == "chat":
                content["severity"] = event.priority.value
                content["format"] = chat_format or "slack"
        except TemplateError as exc:
            raise TemplateError(f"{where}: {exc.reason}") from exc
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"{where}: {exc.name or ''} line {exc.lineno}: {exc}") from exc
        except Exception as exc:  # any template bug fails one notification, never the router
            raise TemplateError(f"{where}: {exc}") from exc
        return content

    def _block(self, event_type: str, block: str, context: dict[str, Any]) -> str:
        for template in self.chain(event_type):
            for name in (block, *BLOCK_FALLBACKS.get(block, ())):
                render = template.blocks.get(name)
                if render is not None:
                    text = "".join(render(template.new_context(context))).strip()
                    return _SPACES.sub(" ", text) if block in ONE_LINE else text
        raise TemplateError(f"no template defines block {block!r}")

    def _email_html(self, event_type: str, context: dict[str, Any]) -> str:
        template = self.env.select_template([f"{event_type}.html.j2", EMAIL_LAYOUT])
        return template.render(context).strip()


__all__ = ["PARTS", "TemplateError", "TemplateRenderer", "truncate", "variables"]
