"""The rough edges a first hour runs into: JSON syntax errors say where, a trailing slash
routes, `keys create` takes several scopes at once, the load UI binds loopback."""

from __future__ import annotations

import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Stack
from tests.support import ROOT

FOLLOW = {"type": "follow", "user_id": "u-1", "data": {"actor": "Ana"}}


def test_malformed_json_names_the_line_and_column_not_a_field(client: TestClient) -> None:
    resp = client.post(
        "/events",
        content=b'{"type": "follow",\n "user_id": }',
        headers={"content-type": "application/json"},
    )
    assert resp.status_code == 422
    body = resp.json()
    assert body["message"] == (
        "body: not valid JSON: Expecting value at line 2 column 13 (char 31)"
    )
    assert body["detail"][0]["loc"] == ["body"]


@pytest.mark.parametrize("path", ["/events/", "/events//"])
def test_a_trailing_slash_answers_like_the_path_without_it(client: TestClient, path: str) -> None:
    posted = client.post(path, json=FOLLOW, follow_redirects=False)
    assert posted.status_code == 202, posted.text
    listed = client.get(path, follow_redirects=False)
    assert listed.status_code == 200
    assert posted.json()["event_id"] in [e["event_id"] for e in listed.json()["items"]]


def test_an_unknown_path_with_a_slash_is_a_404_with_a_message(client: TestClient) -> None:
    resp = client.get("/nowhere/", follow_redirects=False)
    assert resp.status_code == 404 and resp.json()["message"]


def test_keys_create_takes_several_scopes_in_one_flag(stack: Stack) -> None:
    created = stack.cli(
        "cli.keys", "create", "--name", "ops", "--scope", "events:write,events:read"
    )
    assert created["scopes"] == ["events:write", "events:read"]
    both = stack.cli(
        "cli.keys", "create", "--name", "ops2", "--scope", "admin", "--scope", "admin,users:write"
    )
    assert both["scopes"] == ["admin", "users:write"]


def test_keys_create_names_an_unknown_scope(stack: Stack) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "cli.keys", "create", "--name", "x", "--scope", "events:write,evil"],
        cwd=ROOT,
        env={**stack.env(), "PATH": ""},
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert "unknown scope evil" in out.stderr


def locust_web_host(*args: str) -> str:
    """The web UI address locust would bind, run from the checkout as the README says (in a
    process of its own: importing locust patches the standard library with gevent)."""
    code = (
        "import sys; from locust.argument_parser import get_parser; "
        "print(get_parser().parse_args(sys.argv[1:]).web_host)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, "-f", "locustfile.py", *args],
        cwd=ROOT,  # locust reads [tool.locust] from ./pyproject.toml
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1]


def test_the_locust_web_ui_binds_loopback_unless_asked() -> None:
    assert locust_web_host() == "127.0.0.1"
    assert locust_web_host("--web-host", "0.0.0.0") == "0.0.0.0"
