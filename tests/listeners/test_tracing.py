"""One connected trace per event: the API's accept, the router, the worker's send and the
provider call, joined by the traceparent that SNS and SQS message attributes carry and
that reaches the provider as an HTTP header. In-process, against the emulator and the
sandbox, with the SDK's in-memory exporter."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once

from api.main import create_app
from core.platform import tracing
from core.platform.settings import Settings
from listeners.messages import Ack, QueueMessage
from listeners.router import Router
from listeners.worker import build_worker
from tests.conftest import AUTH, Stack


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    yield exporter
    provider.shutdown()
    forget_provider()


def forget_provider() -> None:
    """OpenTelemetry sets its global provider once per process; later tests run untraced,
    as processes without configured tracing do."""
    trace._TRACER_PROVIDER = None
    trace._TRACER_PROVIDER_SET_ONCE = Once()


def received(stack: Stack, queue: str) -> list[QueueMessage]:
    return [QueueMessage.from_sqs(queue, raw) for raw in stack.receive_all(queue)]


def test_one_trace_from_the_post_to_the_provider_request(
    stack: Stack, sandbox: Any, spans: InMemorySpanExporter
) -> None:
    settings = Settings(
        **{**stack.settings.model_dump(), "sandbox": True, "sandbox_port": sandbox.port}
    )
    with TestClient(create_app(settings, stack.clients), headers=AUTH) as api:
        user = api.put("/users/u-traced", json={"phone": "+14155550120", "timezone": "UTC"})
        assert user.status_code in (200, 201), user.text
        prefs = {"categories": {"activity": ["sms"]}}
        assert api.put("/users/u-traced/preferences", json=prefs).status_code == 200
        body = {
            "type": "comment",
            "user_id": "u-traced",
            "data": {"actor": "Bo", "post": "p-1", "text": "hi"},
        }
        producer = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        posted = api.post("/events", json=body, headers={"traceparent": producer})
        assert posted.status_code == 202, posted.text
    event_id = posted.json()["event_id"]

    names = stack.clients.names
    routed = received(stack, names.router_queue("normal"))
    assert "traceparent" in routed[0].attributes
    assert Router(settings, stack.clients)(routed) == [Ack()]

    sms = received(stack, names.channel_queue("sms", "normal"))
    assert "traceparent" in sms[0].attributes
    assert len(sms[0].attributes) <= 10
    _, handler, _ = build_worker(settings, stack.clients, "sms")
    try:
        assert handler(sms) == [Ack()]
    finally:
        handler.close()

    by_name = {span.name: span for span in spans.get_finished_spans()}
    accept, route = by_name["herald.accept"], by_name["herald.route"]
    send, provider = by_name["herald.send"], by_name["herald.provider"]
    trace_id = accept.context.trace_id
    assert trace_id == int("0af7651916cd43dd8448eb211c80319c", 16)  # the producer's trace
    assert accept.parent is not None and accept.parent.span_id == int("b7ad6b7169203331", 16)
    assert {s.context.trace_id for s in (route, send, provider)} == {trace_id}
    assert route.parent is not None and route.parent.span_id == accept.context.span_id
    assert send.parent is not None and send.parent.span_id == route.context.span_id
    assert provider.parent is not None and provider.parent.span_id == send.context.span_id

    [request] = sandbox.messages(notification_id=f"{event_id}:sms:u-traced")
    headers = {k.lower(): v for k, v in request["headers"].items()}
    version, header_trace, parent_span, _ = headers["traceparent"].split("-")
    assert version == "00"
    assert int(header_trace, 16) == trace_id
    assert int(parent_span, 16) == provider.context.span_id


def test_without_a_provider_nothing_is_propagated(stack: Stack) -> None:
    with TestClient(create_app(stack.settings, stack.clients), headers=AUTH) as api:
        body = {
            "type": "comment",
            "user_id": "u-1",
            "data": {"actor": "Bo", "post": "p-1", "text": "hi"},
        }
        assert api.post("/events", json=body).status_code == 202
    [message] = received(stack, stack.clients.names.router_queue("normal"))
    assert "traceparent" not in message.attributes


def test_an_otlp_endpoint_turns_tracing_on(stack: Stack) -> None:
    assert not tracing.configure(stack.settings, "api")  # no endpoint: stays off
    assert not tracing.enabled()
    settings = stack.settings.model_copy(update={"otlp_endpoint": "http://127.0.0.1:9/v1/traces"})
    try:
        assert tracing.configure(settings, "api")
        provider = trace.get_tracer_provider()
        assert isinstance(provider, TracerProvider)
        assert provider.resource.attributes["service.name"] == "herald-api"
    finally:
        provider = trace.get_tracer_provider()
        if isinstance(provider, TracerProvider):
            provider.shutdown()
        forget_provider()


def test_a_malformed_producer_traceparent_starts_a_new_trace(
    stack: Stack, spans: InMemorySpanExporter
) -> None:
    with TestClient(create_app(stack.settings, stack.clients), headers=AUTH) as api:
        body = {
            "type": "comment",
            "user_id": "u-1",
            "data": {"actor": "Bo", "post": "p-1", "text": "hi"},
        }
        posted = api.post("/events", json=body, headers={"traceparent": "not-a-trace"})
        assert posted.status_code == 202, posted.text
    [accept] = [s for s in spans.get_finished_spans() if s.name == "herald.accept"]
    assert accept.parent is None
    [message] = received(stack, stack.clients.names.router_queue("normal"))
    assert message.attributes["traceparent"].split("-")[1] == f"{accept.context.trace_id:032x}"
