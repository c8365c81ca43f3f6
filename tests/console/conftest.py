"""Console fixtures: the app in-process for the security tests (plain HTTP, no browser),
and a helper that signs a client in through the sign-in form as a browser would."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from core.security.api_keys import ApiKeyStore
from tests.conftest import AUTH, TEST_API_KEY, Stack

# Loopback, as `make run` serves it: the session cookie is not Secure there, so a plain
# http client sends it back.
LOOPBACK = "http://127.0.0.1"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def sign_in(client: TestClient, key: str) -> None:
    page = client.get("/console/sign-in")
    resp = client.post(
        "/console/sign-in",
        data={"csrf": csrf_of(page.text), "api_key": key, "next": "/console/events"},
        follow_redirects=False,
    )
    assert resp.status_code == 303, resp.text
    assert resp.headers["location"] == "/console/events"


def new_key(stack: Stack, *scopes: str, owner: str = "default") -> str:
    store = ApiKeyStore(stack.clients.dynamodb, stack.clients.names.table)
    return store.create("console-test", tuple(scopes), owner=owner)[1]


@pytest.fixture
def api(stack: Stack) -> Iterator[TestClient]:
    """The app in-process; this client calls the JSON API with the test key."""
    with TestClient(create_app(stack.settings, stack.clients), headers=AUTH) as client:
        yield client


@pytest.fixture
def browser_like(api: TestClient) -> Iterator[TestClient]:
    """A second client of the same app, without the API key, on loopback: a browser."""
    with TestClient(api.app, base_url=LOOPBACK) as client:
        yield client


@pytest.fixture
def signed_in(browser_like: TestClient) -> TestClient:
    sign_in(browser_like, TEST_API_KEY)
    return browser_like
