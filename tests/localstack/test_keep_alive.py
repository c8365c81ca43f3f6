"""The emulator keeps connections alive, as AWS does (`localstack/keep_alive.py`): many
calls share one connection, an unread body does not spill into the next request, and a
client that asks to close gets its connection closed."""

from __future__ import annotations

import http.client
import json
import socket
from urllib.parse import urlsplit

LIST_TABLES = {
    "X-Amz-Target": "DynamoDB_20120810.ListTables",
    "Content-Type": "application/x-amz-json-1.0",
    "Authorization": (
        "AWS4-HMAC-SHA256 Credential=t/20260101/us-east-1/dynamodb/aws4_request, "
        "SignedHeaders=host, Signature=x"
    ),
}


def connect(endpoint: str) -> http.client.HTTPConnection:
    url = urlsplit(endpoint)
    return http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=10)


def list_tables(conn: http.client.HTTPConnection, **headers: str) -> http.client.HTTPResponse:
    conn.request("POST", "/", body=b"{}", headers={**LIST_TABLES, **headers})
    return conn.getresponse()


def test_calls_share_one_connection(moto_endpoint: str) -> None:
    conn = connect(moto_endpoint)
    sockets: set[int] = set()
    for _ in range(5):
        resp = list_tables(conn)
        assert resp.status == 200
        assert "TableNames" in json.loads(resp.read())
        assert (resp.getheader("Connection") or "").lower() != "close"
        assert conn.sock is not None
        sockets.add(id(conn.sock))
    assert len(sockets) == 1
    conn.close()


def test_a_body_the_application_leaves_unread_does_not_reach_the_next_request(
    moto_endpoint: str,
) -> None:
    """moto's API page reads no body: the next request on the connection is still read
    from its own first byte."""
    conn = connect(moto_endpoint)
    conn.request("GET", "/moto-api/", body=b"x" * 70_000)
    first = conn.getresponse()
    first.read()
    assert first.status == 200
    second = list_tables(conn)
    assert second.status == 200
    assert "TableNames" in json.loads(second.read())
    conn.close()


def test_a_client_that_asks_to_close_is_closed(moto_endpoint: str) -> None:
    url = urlsplit(moto_endpoint)
    with socket.create_connection((url.hostname or "127.0.0.1", url.port or 80), 10) as sock:
        headers = "".join(f"{k}: {v}\r\n" for k, v in LIST_TABLES.items())
        sock.sendall(
            (
                f"POST / HTTP/1.1\r\nHost: x\r\n{headers}Content-Length: 2\r\n"
                "Connection: close\r\n\r\n{}"
            ).encode()
        )
        answer = b""
        while chunk := sock.recv(65536):  # ends only when the server closes
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200")
    assert b"TableNames" in answer
