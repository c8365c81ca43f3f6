"""OpenTelemetry traces: one trace per event, from the API's accept to the provider request.

A span per hop — `herald.accept` (API), `herald.route` (router), `herald.send` (worker) and
`herald.provider` (the provider call) — joined by the W3C `traceparent`, which travels as a
message attribute through SNS (raw delivery keeps it) and SQS, and as an HTTP header to the
providers. Only `traceparent` is carried: one attribute of SQS's ten (channel messages use
three, DLQ copies add three).

Spans are looked up by the id of the thing in flight (an event id, a notification id) in a
small registry of open hop spans, because the calls that carry the context onward (a
group-commit PublishBatch, a SendMessageBatch, a send on the worker's thread pool) run on
other threads than the one that opened the span.

Off by default: until `configure()` installs an SDK tracer provider every helper here is a
no-op costing a dictionary lookup. With `HERALD_OTLP_ENDPOINT` spans are exported over
OTLP/HTTP; tests install their own provider with an in-memory exporter.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from core.platform.settings import Settings

TRACEPARENT = "traceparent"
_propagator = TraceContextTextMapPropagator()
_open: dict[str, Span] = {}
_lock = threading.Lock()

F = TypeVar("F", bound=Callable[..., Any])


def enabled() -> bool:
    """Whether an SDK tracer provider is installed (the API's default is a no-op proxy)."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def configure(settings: Settings, service: str) -> bool:
    """Install a tracer provider exporting over OTLP when an endpoint is configured;
    returns whether tracing is on."""
    if not settings.otlp_endpoint or enabled():
        return enabled()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": f"herald-{service}"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(settings.otlp_endpoint)))
    trace.set_tracer_provider(provider)
    return True


def _tracer() -> trace.Tracer:
    return trace.get_tracer("herald")


def _parent(carrier: dict[str, str]) -> otel_context.Context | None:
    return _propagator.extract(carrier) if TRACEPARENT in carrier else None


@contextmanager
def hop(key: str, name: str, carrier: dict[str, str] | None = None) -> Iterator[None]:
    """A span for `key` (an event or notification id) while the block runs, findable by
    `attributes()` from any thread; its parent is the context in `carrier`, if any."""
    if not enabled():
        yield
        return
    span = _tracer().start_span(name, context=_parent(carrier or {}), kind=SpanKind.SERVER)
    with _lock:
        _open[key] = span
    try:
        yield
    finally:
        with _lock:
            if _open.get(key) is span:
                del _open[key]
        span.end()


@contextmanager
def child(key: str, name: str, **attributes: str) -> Iterator[None]:
    """A client span under `key`'s open hop span, current on this thread while the block
    runs, so HTTP calls made in it carry its context (see `inject`)."""
    with _lock:
        parent = _open.get(key)
    if parent is None:
        yield
        return
    ctx = trace.set_span_in_context(parent)
    with _tracer().start_as_current_span(
        name, context=ctx, kind=SpanKind.CLIENT, attributes=attributes
    ):
        yield


def attributes(key: str) -> dict[str, dict[str, str]]:
    """SNS/SQS message attributes carrying `key`'s open span context (none if no span)."""
    with _lock:
        span = _open.get(key)
    if span is None:
        return {}
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, trace.set_span_in_context(span))
    value = carrier.get(TRACEPARENT)
    return {TRACEPARENT: {"DataType": "String", "StringValue": value}} if value else {}


def inject(headers: dict[str, str]) -> dict[str, str]:
    """Add the current span's `traceparent` to outgoing HTTP headers (no-op without one)."""
    if enabled():
        _propagator.inject(headers)
    return headers


def traced_batch(name: str, key_of: Callable[[str], str | None]) -> Callable[[F], F]:
    """Decorates a queue handler `(self, messages) -> results`: a `name` span per message
    (keyed by `key_of(body)`), each the child of the context its `traceparent` attribute
    carries, open while the handler runs."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def handle(self: Any, messages: Sequence[Any]) -> Any:
            if not enabled():
                return fn(self, messages)
            spans: dict[str, Span] = {}
            for message in messages:
                key = key_of(message.body)
                if key is None or key in spans:
                    continue
                spans[key] = _tracer().start_span(
                    name,
                    context=_parent(dict(message.attributes)),
                    kind=SpanKind.CONSUMER,
                    attributes={"messaging.destination.name": message.queue},
                )
            with _lock:
                _open.update(spans)
            try:
                return fn(self, messages)
            finally:
                with _lock:
                    for key, span in spans.items():
                        if _open.get(key) is span:
                            del _open[key]
                for span in spans.values():
                    span.end()

        return handle  # type: ignore[return-value]

    return wrap


def _body(body: str) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def event_id_of(body: str) -> str | None:
    """The event id of a router message (an event, or a continuation holding one)."""
    value = _body(body)
    event = value.get("event") if isinstance(value.get("event"), dict) else value
    found = event.get("event_id") if isinstance(event, dict) else None
    return str(found) if found else None


def notification_id_of(body: str) -> str | None:
    found = _body(body).get("notification_id")
    return str(found) if found else None
