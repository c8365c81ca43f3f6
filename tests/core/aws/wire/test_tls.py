"""The lean path over TLS, as it reaches AWS: the server's name is checked against a
trusted certificate, a connection is kept for the next call, and an untrusted server is
botocore's `SSLError`, never a request sent."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import SSLError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from core.aws.wire.connections import ConnectionPool


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class TlsServer:
    def __init__(self, cert: Path, key: Path) -> None:
        self.requests: list[tuple[int, bytes]] = []  # (client port, body)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append((self.client_address[1], body))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[tuple[TlsServer, Path]]:
    cert, key = self_signed(tmp_path)
    server = TlsServer(cert, key)
    yield server, cert
    server.close()


def test_a_trusted_server_is_reached_by_name_and_its_connection_kept(
    tls: tuple[TlsServer, Path],
) -> None:
    server, cert = tls
    trusting = ssl.create_default_context(cafile=str(cert))
    pool = ConnectionPool(
        f"https://localhost:{server.port}",
        size=2,
        connect_timeout=2,
        read_timeout=2,
        ssl_context=trusting,
    )
    try:
        for body in (b'{"n": 1}', b'{"n": 2}'):
            reply = pool.request(body, {"Host": pool.host, "Content-Type": "x"})
            assert (reply.status, reply.content) == (200, b"{}")
    finally:
        pool.close()
    assert [body for _, body in server.requests] == [b'{"n": 1}', b'{"n": 2}']
    assert len({port for port, _ in server.requests}) == 1  # one connection for both


def test_an_untrusted_server_is_an_ssl_error_before_anything_is_sent(
    tls: tuple[TlsServer, Path],
) -> None:
    server, _ = tls
    pool = ConnectionPool(
        f"https://localhost:{server.port}", size=2, connect_timeout=2, read_timeout=2
    )
    with pytest.raises(SSLError):
        pool.request(b"{}", {"Host": pool.host})
    assert server.requests == []
