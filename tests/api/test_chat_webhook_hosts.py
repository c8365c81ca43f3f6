"""A user's chat webhook is user input the workers will POST to: only real chat hosts."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from tests.conftest import AUTH, Stack

INTERNAL_URLS = [
    "http://169.254.169.254/latest/meta-data/",
    "https://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/hook",
    "http://[::1]/hook",
    "https://localhost/hook",
    "https://hooks.slack.com@10.0.0.1/hook",
    "https://hooks.slack.com.internal.example/hook",
    "https://hooks.slack.com:8443/services/T/B/X",
    "http://hooks.slack.com/services/T/B/X",
]


def test_internal_and_foreign_webhook_urls_are_422_naming_chat_url(client: TestClient) -> None:
    for url in INTERNAL_URLS:
        resp = client.put("/users/u-1", json={"chat": {"format": "slack", "url": url}})
        assert resp.status_code == 422, (url, resp.text)
        assert resp.json()["message"].startswith("chat.url: "), url
    assert client.get("/users/u-1").status_code == 404


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.slack.com/services/T000/B000/XXXX",
        "https://contoso.webhook.office.com/webhookb2/abc/IncomingWebhook/def/ghi",
        "https://prod-01.westus.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke",
    ],
)
def test_real_slack_and_teams_hosts_are_accepted(client: TestClient, url: str) -> None:
    resp = client.put("/users/u-1", json={"chat": {"format": "teams", "url": url}})
    assert resp.status_code == 201, resp.text


def test_the_allow_list_is_a_setting_for_self_hosted_chat(stack: Stack) -> None:
    settings = stack.settings.model_copy(update={"chat_webhook_hosts": "chat.corp.example"})
    with TestClient(create_app(settings, stack.clients), headers=AUTH) as client:
        own = {"chat": {"format": "slack", "url": "https://chat.corp.example/hooks/abc"}}
        assert client.put("/users/u-1", json=own).status_code == 201
        slack = {"chat": {"format": "slack", "url": "https://hooks.slack.com/services/T/B/X"}}
        assert client.put("/users/u-2", json=slack).status_code == 422
