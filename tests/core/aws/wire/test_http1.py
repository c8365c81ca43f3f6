"""Answers read off the wire as HTTP/1.1 says, within bounds whatever a server sends."""

from __future__ import annotations

import io

import pytest

from core.aws.wire import http1


def answer(raw: bytes) -> http1.Answer:
    return http1.receive(io.BytesIO(raw))


def test_a_sized_answer_and_its_headers() -> None:
    got = answer(
        b"HTTP/1.1 200 OK\r\nX-Amz-Crc32: 1\r\nContent-Length: 5\r\nSet-Cookie: a\r\n"
        b"set-cookie: b\r\n\r\nhello"
    )
    assert (got.status, got.content, got.keep_alive) == (200, b"hello", True)
    assert got.headers["x-amz-crc32"] == "1"
    assert got.headers["set-cookie"] == "a, b"


def test_a_chunked_answer_with_trailers() -> None:
    got = answer(
        b"HTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'4;ext=1\r\n{"a"\r\n3\r\n: 1\r\n1\r\n}\r\n0\r\nTrailer: x\r\n\r\n'
    )
    assert (got.status, got.content) == (400, b'{"a": 1}')


def test_interim_answers_are_skipped_and_close_is_honoured() -> None:
    got = answer(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
    )
    assert (got.status, got.content, got.keep_alive) == (204, b"", False)
    assert not answer(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").keep_alive


def test_an_undelimited_body_is_read_to_the_end_and_not_kept_alive() -> None:
    got = answer(b"HTTP/1.1 200 OK\r\n\r\n{}")
    assert (got.content, got.keep_alive) == (b"{}", False)


def test_nothing_at_all_is_no_answer() -> None:
    with pytest.raises(http1.NoAnswer):
        answer(b"")


@pytest.mark.parametrize(
    "raw",
    [
        b"SMTP ready\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n" + b"X-Long: " + b"a" * 70_000 + b"\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n" + b"X-H: v\r\n" * 101 + b"\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n",
    ],
)
def test_malformed_or_unbounded_answers_are_protocol_errors(raw: bytes) -> None:
    with pytest.raises(http1.ProtocolError):
        answer(raw)


def test_the_request_is_one_write_with_its_length() -> None:
    class Socket:
        def __init__(self) -> None:
            self.writes: list[bytes] = []

        def sendall(self, data: bytes) -> None:
            self.writes.append(data)

    sock = Socket()
    http1.send(sock, "/", {"Host": "h", "X-Amz-Target": "T.Op"}, b"{}")  # type: ignore[arg-type]
    assert sock.writes == [
        b"POST / HTTP/1.1\r\nHost: h\r\nX-Amz-Target: T.Op\r\nContent-Length: 2\r\n\r\n{}"
    ]
