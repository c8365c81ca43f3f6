"""An httpx transport that connects to public addresses only.

The host of a user's webhook passes the allow-list by name, but a name can resolve to
anything, and resolve differently a second later (DNS rebinding). So the check happens
where the connection is made: the transport resolves the name itself, refuses the request
if any answer is loopback, private, link-local (the metadata service) or otherwise not
public, and connects to the very address it checked. TLS still verifies the certificate
against the host name. Every connection, a redirect's too, goes through here; the client
ignores proxy environment variables, which would connect on its behalf unchecked.
"""

from __future__ import annotations

import socket
import typing

import httpcore
import httpx

from core.security.chat_hosts import is_public_address


class BlockedAddressError(Exception):
    """The host resolves to an address Herald must not call."""


def public_address(host: str, port: int) -> str:
    """The first address of `host` after checking every one it resolves to."""
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
    addresses = [str(answer[4][0]) for answer in answers]
    blocked = [a for a in addresses if not is_public_address(a)]
    if blocked or not addresses:
        raise BlockedAddressError(f"{host} resolves to a non-public address")
    return addresses[0]


class PublicOnlyBackend(httpcore.SyncBackend):
    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        return super().connect_tcp(
            public_address(host, port), port, timeout, local_address, socket_options
        )


class PublicOnlyTransport(httpx.HTTPTransport):
    """httpx's own transport with the connection pool's network backend swapped; the pool
    is rebuilt with the same options httpx gives it (httpx exposes no backend argument)."""

    def __init__(self, limits: httpx.Limits = httpx.Limits()) -> None:
        super().__init__(trust_env=False, limits=limits)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PublicOnlyBackend(),
        )


def public_only_client(timeout: float) -> httpx.Client:
    """A client for user-given URLs: public addresses only, no redirects, no proxies."""
    return httpx.Client(
        timeout=timeout, transport=PublicOnlyTransport(), follow_redirects=False, trust_env=False
    )
