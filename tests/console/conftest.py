"""Console fixtures: the app in-process for the security tests (plain HTTP, no browser),
and a helper that signs a client in through the sign-in form as a browser would."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from core.security.api_keys import ApiKeyStore
from tests.conftest import AUTH, TEST_API_KEY, Stack
from tests.console.stack import ConsoleStack, console_stack
from tests.support import ROOT

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


# --- the browser tests ---------------------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Screenshots of every page the browser tests visit (gitignored).
SHOTS = ROOT / "test-output" / "console"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium for the browser tests' module: the distribution's (Playwright's own
    download is not used); they skip, saying why, where there is none. It ends with the
    module because Playwright's sync API keeps an event loop running in the thread while it
    is open, and a later test's asyncio.run() on the same worker would fail."""
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium (as .ci/run does)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        except sync_api.Error as exc:
            pytest.skip(f"Chromium at {CHROMIUM} did not start: {exc.message[:300]}")
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def running(
    tmp_path_factory: pytest.TempPathFactory, sandbox_server: Any
) -> Iterator[ConsoleStack]:
    with console_stack(tmp_path_factory.mktemp("console"), sandbox_server.port) as found:
        yield found
        found.assert_alive()


@pytest.fixture(scope="module")
def page(browser: Any, running: ConsoleStack) -> Iterator[Any]:
    """A signed-in tab (one browser context for the module: one session)."""
    context = browser.new_context(base_url=running.base, viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    tab.goto("/console/events")
    assert "/console/sign-in" in tab.url
    tab.get_by_label("API key").fill(TEST_API_KEY)
    tab.get_by_role("button", name="Sign in").click()
    tab.wait_for_url("**/console/events")
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield tab
    context.close()
