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

Limits (docs/limits.md): each channel's parts are cut to what its provider takes (`PART_MAX`,
with an ellipsis), and one render may take at most `RENDER_SECONDS_MAX` and write at most
`CONTENT_MAX_BYTES` in all, so every notification fits one queue message and a template
with a runaway loop fails its notification (TemplateError) instead of stalling the router.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment, safe_range

from core.catalogue.event_types import EVENT_TYPES
from core.catalogue.models import Event

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
DEFAULT_TEMPLATE = "_default.j2"
EMAIL_LAYOUT = "_email.html.j2"
TEXT_MAX = 1600  # Twilio's limit for one SMS / WhatsApp body
ELLIPSIS = "…"
# Per part, in characters: what each provider takes in one message.
PART_MAX: dict[str, int] = {
    "sms_text": TEXT_MAX,
    "whatsapp_text": TEXT_MAX,
    "email_subject": 200,  # mail clients cut long subjects; RFC 5322 lines stop at 998
    "email_text": 32 * 1024,  # the HTML layout repeats it, escaped: room for both
    "push_title": 100,  # APNs and FCM take 4 KB per payload, title, body and ids together
    "push_body": 700,
    "chat_title": 150,
    "chat_text": 2800,  # a Slack section block takes 3000 characters with the title
}
# One render: all parts of one channel, HTML included. Well under SQS's 256 KiB message,
# which also carries the addresses and ids.
CONTENT_MAX_BYTES = 192 * 1024
RENDER_SECONDS_MAX = 1.0
RANGE_CHECK_EVERY = 1024  # `range` items between two looks at the clock

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


class RenderBudget:
    """How long one render may run and how much it may write; spent as output streams, so
    a runaway template stops at the limit instead of filling memory."""

    def __init__(
        self, seconds: float = RENDER_SECONDS_MAX, max_bytes: int = CONTENT_MAX_BYTES
    ) -> None:
        self.seconds = seconds
        self.max_bytes = max_bytes
        self.deadline = time.monotonic() + seconds
        self.written = 0

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateError(f"rendering took over {self.seconds:g}s")

    def write(self, chunk: str) -> None:
        self.written += len(chunk.encode("utf-8", "surrogatepass"))
        if self.written > self.max_bytes:
            raise TemplateError(
                f"rendered content is over {self.max_bytes} bytes (the most one notification "
                "carries)"
            )
        self.tick()

    def collect(self, chunks: Iterator[str], limit: int | None = None) -> str:
        """The output of `chunks`; with a `limit` (characters) reading stops once twice
        that much is in hand (room for the stripping of blank space), as the part will be
        cut to `limit` anyway."""
        out: list[str] = []
        length = 0
        for chunk in chunks:
            if limit is not None and length + len(chunk) > 2 * limit:
                chunk = chunk[: 2 * limit - length + 1]
            self.write(chunk)
            out.append(chunk)
            length += len(chunk)
            if limit is not None and length > 2 * limit:
                break
        return "".join(out)


_BUDGET: ContextVar[RenderBudget | None] = ContextVar("render_budget", default=None)


class TimedRange:
    """The sandbox's `range` (at most 100,000 items) that looks at the render's clock while
    it is iterated, so nested loops that print nothing still stop at the time limit."""

    def __init__(self, *args: int) -> None:
        self._range = safe_range(*args)

    def __len__(self) -> int:
        return len(self._range)

    def __getitem__(self, index: int) -> int:
        return self._range[index]

    def __iter__(self) -> Iterator[int]:
        budget = _BUDGET.get()
        for count, value in enumerate(self._range):
            if budget is not None and count % RANGE_CHECK_EVERY == 0:
                budget.tick()
            yield value


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
        "dedupe_key": event.dedupe_key,
        "action": event.action,
    }
    return {
        **event.data,
        "event": metadata,
        "data": event.data,
        "recipient": dict(recipient or {}),
    }


class TemplateRenderer:
    """Renders events with one sandboxed environment; compiled templates are cached."""

    def __init__(
        self,
        directory: Path = TEMPLATE_DIR,
        *,
        render_seconds: float = RENDER_SECONDS_MAX,
        content_max_bytes: int = CONTENT_MAX_BYTES,
    ) -> None:
        self.render_seconds = render_seconds
        self.content_max_bytes = content_max_bytes
        self.env = SandboxedEnvironment(
            loader=jinja2.FileSystemLoader(directory),
            undefined=StrictUndefined,
            autoescape=_autoescape,
            trim_blocks=True,
            lstrip_blocks=True,
            # Templates ship with the code: no stat of each file on every render.
            auto_reload=False,
        )
        self.env.globals["range"] = TimedRange
        self._chains: dict[str, list[jinja2.Template]] = {}
        self._html: dict[str, jinja2.Template] = {}

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
        token = None
        try:
            # Compile first: templates ship with the code and compile once per process, so
            # the time limit is the render's own and a cold start spends none of it.
            self.chain(event.type)
            if channel == "email":
                self._html_template(event.type)
            budget = RenderBudget(self.render_seconds, self.content_max_bytes)
            token = _BUDGET.set(budget)
            context = variables(event, recipient)
            content = {
                part: self._block(event.type, f"{channel}_{part}", context, budget)
                for part in PARTS[channel]
            }
            if channel == "email":
                content["html"] = self._email_html(
                    event.type, {**context, "content": content}, budget
                )
            elif channel == "chat":
                content["severity"] = event.priority.value
                content["format"] = chat_format or "slack"
        except TemplateError as exc:
            raise TemplateError(f"{where}: {exc.reason}") from exc
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"{where}: {exc.name or ''} line {exc.lineno}: {exc}") from exc
        except Exception as exc:  # any template bug fails one notification, never the router
            raise TemplateError(f"{where}: {exc}") from exc
        finally:
            if token is not None:
                _BUDGET.reset(token)
        return content

    def _block(
        self, event_type: str, block: str, context: dict[str, Any], budget: RenderBudget
    ) -> str:
        for template in self.chain(event_type):
            for name in (block, *BLOCK_FALLBACKS.get(block, ())):
                render = template.blocks.get(name)
                if render is not None:
                    limit = PART_MAX[block]
                    text = budget.collect(render(template.new_context(context)), limit).strip()
                    return truncate(_SPACES.sub(" ", text) if block in ONE_LINE else text, limit)
        raise TemplateError(f"no template defines block {block!r}")

    def _html_template(self, event_type: str) -> jinja2.Template:
        template = self._html.get(event_type)
        if template is None:
            template = self.env.select_template([f"{event_type}.html.j2", EMAIL_LAYOUT])
            self._html[event_type] = template
        return template

    def _email_html(self, event_type: str, context: dict[str, Any], budget: RenderBudget) -> str:
        return budget.collect(self._html_template(event_type).generate(context)).strip()


__all__ = [
    "CONTENT_MAX_BYTES",
    "PARTS",
    "PART_MAX",
    "RENDER_SECONDS_MAX",
    "RenderBudget",
    "TemplateError",
    "TemplateRenderer",
    "truncate",
    "variables",
]
