"""Attachments through the real SendGrid SDK, and how the sandbox keeps them."""

from __future__ import annotations

import base64

import httpx
import pytest

from core.catalogue.models import Attachment
from localstack.sandbox import Sandbox, recording
from localstack.sandbox.recording import SandboxState
from notifiers.email import EmailNotifier
from tests.notifiers.conftest import MakeMessage

CSV = b"day,plays\r\n2030-01-01,3\r\n"
PDF = b"%PDF-1.3 not really a pdf"


def files() -> list[Attachment]:
    return [
        Attachment(filename="plays.csv", type="text/csv", content=base64.b64encode(CSV).decode()),
        Attachment(
            filename="plays.pdf", type="application/pdf", content=base64.b64encode(PDF).decode()
        ),
    ]


def test_attachments_go_out_in_order_and_the_sandbox_lists_and_serves_them(
    email: EmailNotifier, sandbox: Sandbox, make_message: MakeMessage
) -> None:
    email.send(make_message("email").model_copy(update={"attachments": files()}))
    [request] = sandbox.messages("sendgrid")
    assert request["attachments"] == [
        {
            "filename": "plays.csv",
            "type": "text/csv",
            "disposition": "attachment",
            "size": len(CSV),
        },
        {
            "filename": "plays.pdf",
            "type": "application/pdf",
            "disposition": "attachment",
            "size": len(PDF),
        },
    ]
    # The recorded request keeps the attachments' fields, not their content.
    assert request["json"]["attachments"][0] == {
        "type": "text/csv",
        "filename": "plays.csv",
        "disposition": "attachment",
    }
    assert base64.b64encode(CSV).decode() not in request["body"]
    listed = httpx.get(f"{sandbox.url}/sandbox/messages", params={"provider": "sendgrid"}).json()
    assert [a["size"] for a in listed[0]["attachments"]] == [len(CSV), len(PDF)]

    for index, (body, kind) in enumerate(((CSV, "text/csv"), (PDF, "application/pdf"))):
        got = httpx.get(f"{sandbox.url}/sandbox/messages/{request['seq']}/attachments/{index}")
        assert (got.status_code, got.content, got.headers["content-type"]) == (200, body, kind)
    missing = httpx.get(f"{sandbox.url}/sandbox/messages/{request['seq']}/attachments/2")
    assert missing.status_code == 404


def test_an_email_without_attachments_sends_none(
    email: EmailNotifier, sandbox: Sandbox, make_message: MakeMessage
) -> None:
    email.send(make_message("email"))
    [request] = sandbox.messages("sendgrid")
    assert "attachments" not in request["json"] and "attachments" not in request


def test_a_queued_message_never_carries_its_attachments(make_message: MakeMessage) -> None:
    message = make_message("email").model_copy(update={"attachments": files()})
    assert "attachments" not in message.model_dump_json()


def test_the_sandbox_forgets_the_oldest_files_past_its_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(recording, "FILES_KEPT_BYTES", 10)
    state = SandboxState()
    state.keep_files(1, [("text/csv", b"123456")])
    state.keep_files(2, [("text/csv", b"abcdef")])
    assert state.file(1, 0) is None
    assert state.file(2, 0) == ("text/csv", b"abcdef")
