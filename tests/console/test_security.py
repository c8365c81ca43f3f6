"""The console's security, over plain HTTP: tenants, CSRF, scopes, escaping, cookies."""

from __future__ import annotations

from typing import cast

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.conftest import Stack
from tests.console.conftest import LOOPBACK, csrf_of, new_key, sign_in


def post_event(api: TestClient, data: dict[str, object]) -> str:
    resp = api.post("/events", json={"type": "follow", "user_id": "u-1", "data": data})
    assert resp.status_code == 202, resp.text
    return str(resp.json()["event_id"])


def test_without_a_session_pages_send_the_browser_to_sign_in(browser_like: TestClient) -> None:
    resp = browser_like.get("/console/events?status=FAILED", follow_redirects=False)
    assert resp.status_code == 303
    assert resp.headers["location"] == "/console/sign-in?next=/console/events%3Fstatus%3DFAILED"


def test_a_wrong_key_is_refused_on_the_sign_in_page(browser_like: TestClient) -> None:
    page = browser_like.get("/console/sign-in")
    resp = browser_like.post(
        "/console/sign-in", data={"csrf": csrf_of(page.text), "api_key": "hk_nope_nothing"}
    )
    assert resp.status_code == 401
    assert "unknown or revoked key" in resp.text
    assert "herald_console=" not in resp.headers.get("set-cookie", "")


def test_the_session_cookie_is_httponly_strict_and_secure_off_loopback(
    api: TestClient, stack: Stack
) -> None:
    for base, secure in ((LOOPBACK, False), ("http://console.example.com", True)):
        with TestClient(api.app, base_url=base) as client:
            page = client.get("/console/sign-in")
            # Off loopback the sign-in cookie is Secure, which a client on http keeps back.
            client.cookies.set("herald_console_sign_in", page.cookies["herald_console_sign_in"])
            resp = client.post(
                "/console/sign-in",
                data={"csrf": csrf_of(page.text), "api_key": new_key(stack, "events:read")},
                follow_redirects=False,
            )
            assert resp.status_code == 303, resp.text
            cookie = next(
                c for c in resp.headers.get_list("set-cookie") if c.startswith("herald_console=")
            )
            flags = {part.strip().lower() for part in cookie.split(";")}
            assert {"httponly", "samesite=strict", "path=/console"} <= flags
            assert ("secure" in flags) is secure


def test_another_tenants_event_page_is_a_404(
    api: TestClient, browser_like: TestClient, stack: Stack
) -> None:
    event_id = post_event(api, {"actor": "Ana"})
    sign_in(browser_like, new_key(stack, "events:read", owner="acme"))
    assert browser_like.get(f"/console/events/{event_id}").status_code == 404
    assert event_id not in browser_like.get("/console/events").text


def test_a_form_without_its_csrf_token_is_refused(signed_in: TestClient) -> None:
    for path in (
        "/console/sign-out",
        "/console/silences",
        "/console/alerts/" + "a" * 24 + "-1/ack",
    ):
        resp = signed_in.post(path, data={"comment": "x"})
        assert resp.status_code == 403, path
        assert "CSRF" in resp.text
    resp = signed_in.post("/console/sign-out", data={"csrf": "forged"})
    assert resp.status_code == 403
    assert signed_in.get("/console/events").status_code == 200  # still signed in


def test_sign_in_without_its_csrf_token_is_refused(browser_like: TestClient) -> None:
    browser_like.get("/console/sign-in")
    resp = browser_like.post("/console/sign-in", data={"api_key": "hk_a_b"})
    assert resp.status_code == 403


def test_an_events_read_key_cannot_redrive(browser_like: TestClient, stack: Stack) -> None:
    sign_in(browser_like, new_key(stack, "events:read"))
    page = browser_like.get("/console/events")
    assert "Dead letters" not in page.text  # not offered
    resp = browser_like.post(
        "/console/dead-letters/sms-normal/redrive",
        data={"csrf": csrf_of(page.text), "confirm": "yes"},
    )
    assert resp.status_code == 403
    assert "operator" in resp.text
    assert browser_like.get("/console/dead-letters").status_code == 403


def test_script_in_event_data_is_shown_as_text(api: TestClient, signed_in: TestClient) -> None:
    event_id = post_event(api, {"actor": "<script>alert('x')</script>"})
    page = signed_in.get(f"/console/events/{event_id}")
    assert page.status_code == 200
    assert "<script>alert" not in page.text
    assert "&lt;script&gt;alert(" in page.text
    assert "script-src" not in page.headers["content-security-policy"]  # 'self' only


def test_sign_out_ends_the_session_everywhere(signed_in: TestClient) -> None:
    page = signed_in.get("/console/events")
    cookie = signed_in.cookies["herald_console"]
    resp = signed_in.post(
        "/console/sign-out", data={"csrf": csrf_of(page.text)}, follow_redirects=False
    )
    assert resp.status_code == 303
    with TestClient(signed_in.app, base_url=LOOPBACK) as other:
        other.cookies.set("herald_console", cookie)
        assert other.get("/console/events", follow_redirects=False).status_code == 303


def test_a_revoked_key_ends_its_session(
    api: TestClient, browser_like: TestClient, stack: Stack
) -> None:
    key = new_key(stack, "events:read")
    sign_in(browser_like, key)
    assert browser_like.get("/console/events").status_code == 200
    key_id = key.split("_")[1]
    assert api.delete(f"/keys/{key_id}").status_code == 204
    # The key was cached by this process for HERALD_API_KEY_CACHE_SECONDS, as the API caches
    # it; past that the next page finds it revoked.
    app = cast(FastAPI, api.app)
    app.state.console_sessions._keys.clear()
    assert browser_like.get("/console/events", follow_redirects=False).status_code == 303


def test_a_session_past_its_expiry_is_gone_before_the_ttl_removes_it(stack: Stack) -> None:
    from api.console.sessions import SessionStore, _key
    from core.security.api_keys import ApiKeyStore

    token = new_key(stack, "events:read")
    key = ApiKeyStore(stack.clients.dynamodb, stack.clients.names.table).verify(token)
    assert key is not None
    store = SessionStore(stack.clients.dynamodb, stack.clients.names.table)
    session = store.create(key, token)
    assert store.get(session.session_id) == session
    item = stack.clients.dynamodb.get_item(
        TableName=stack.clients.names.table, Key=_key(session.session_id)
    )["Item"]
    assert token not in str(item) and session.session_id not in str(item)  # hashes only
    stack.clients.dynamodb.update_item(
        TableName=stack.clients.names.table,
        Key=_key(session.session_id),
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues={":past": {"N": "1000"}},
    )
    assert store.get(session.session_id) is None
