"""One HTTP/1.1 request and its answer on an open socket, and nothing else.

http.client parses every answer's headers with the email package's feed parser and
sanitizes each header on every read: on the benchmark machine that was most of the lean
path's CPU per call after signing and JSON. AWS answers are small and regular (a status
line, a dozen headers, a body of `Content-Length` bytes, now and then chunked), so they
are read here directly, with the same bounds http.client sets on what a server may send
(header lines of 64 KiB, 100 headers).
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import BinaryIO

MAX_LINE = 65536
MAX_HEADERS = 100
# A body with neither Content-Length nor chunking is read to the connection's end; AWS
# never answers so, and a server that does is not trusted for more than this.
MAX_UNDELIMITED_BODY = 64 * 1024 * 1024


class ProtocolError(Exception):
    """The answer is not HTTP/1.1 as it must be (or was cut off mid-way)."""


class NoAnswer(Exception):
    """The connection ended before a single byte of answer: it was closed under us."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]  # lower-case names
    content: bytes
    keep_alive: bool


def send(sock: socket.socket, path: str, headers: Mapping[str, str], body: bytes) -> None:
    """The request line, headers and body in one write (no Nagle wait between them)."""
    head = [f"POST {path} HTTP/1.1"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    head.append(f"Content-Length: {len(body)}")
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)


def receive(reader: BinaryIO) -> Answer:
    """The answer to the request just sent: status, headers, body."""
    try:
        line = reader.readline(MAX_LINE + 1)
    except ConnectionResetError:
        raise NoAnswer() from None
    if not line:
        raise NoAnswer()
    status, version = _status(line)
    while 100 <= status < 200:  # an interim answer: skip it and its headers
        _headers(reader)
        status, version = _status(reader.readline(MAX_LINE + 1))
    headers = _headers(reader)
    connection = headers.get("connection", "").lower()
    keep_alive = version == "HTTP/1.1" and "close" not in connection
    if status in (204, 304):
        return Answer(status, headers, b"", keep_alive)
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return Answer(status, headers, _chunked(reader), keep_alive)
    length = headers.get("content-length")
    if length is not None:
        try:
            size = int(length)
        except ValueError:
            raise ProtocolError(f"Content-Length {length[:40]!r}") from None
        if size < 0:
            raise ProtocolError(f"Content-Length {size}")
        return Answer(status, headers, _exactly(reader, size), keep_alive)
    content = reader.read(MAX_UNDELIMITED_BODY + 1)
    if len(content) > MAX_UNDELIMITED_BODY:
        raise ProtocolError("an undelimited body over its bound")
    return Answer(status, headers, content, False)


def _status(line: bytes) -> tuple[int, str]:
    if len(line) > MAX_LINE or not line.endswith(b"\n"):
        raise ProtocolError("status line cut off or too long")
    parts = line.decode("latin-1").split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ProtocolError(f"status line {line[:80]!r}")
    return int(parts[1]), parts[0]


def _headers(reader: BinaryIO) -> dict[str, str]:
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS + 1):
        line = reader.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE or not line.endswith(b"\n"):
            raise ProtocolError("header line cut off or too long")
        if line in (b"\r\n", b"\n"):
            return headers
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise ProtocolError(f"header line {line[:80]!r}")
        key = name.strip().lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    raise ProtocolError(f"more than {MAX_HEADERS} headers")


def _exactly(reader: BinaryIO, size: int) -> bytes:
    content = reader.read(size)
    if len(content) != size:
        raise ProtocolError(f"body cut off at {len(content)} of {size} bytes")
    return content


def _chunked(reader: BinaryIO) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        line = reader.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE or not line.endswith(b"\n"):
            raise ProtocolError("chunk size line cut off or too long")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise ProtocolError(f"chunk size {line[:40]!r}") from None
        if size == 0:
            _headers(reader)  # trailers, then the blank line
            return b"".join(parts)
        total += size
        if total > MAX_UNDELIMITED_BODY:
            raise ProtocolError("a chunked body over its bound")
        parts.append(_exactly(reader, size))
        if reader.readline(3) not in (b"\r\n", b"\n"):
            raise ProtocolError("chunk not followed by its line end")
