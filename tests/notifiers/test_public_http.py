"""The transport for user-given URLs connects to public addresses only."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from core.security.chat_hosts import is_public_address
from localstack.sandbox import Sandbox
from notifiers.public_http import BlockedAddressError, public_address, public_only_client


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fd00:ec2::254",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "2002:7f00:1::1",
    ],
)
def test_internal_addresses_are_not_public(address: str) -> None:
    assert not is_public_address(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "52.94.236.248", "2606:4700:4700::1111"])
def test_public_addresses_are_public(address: str) -> None:
    assert is_public_address(address)


def test_the_client_refuses_loopback_by_address_and_by_name(sandbox: Sandbox) -> None:
    port = sandbox.url.rsplit(":", 1)[1]
    with public_only_client(5) as client:
        for url in (f"{sandbox.url}/slack/x", f"http://localhost:{port}/slack/x"):
            with pytest.raises(BlockedAddressError):
                client.post(url, json={"text": "hi"})
    assert sandbox.messages() == []


def test_a_name_with_any_internal_answer_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rebinding name that answers one public and one internal address."""

    def resolve(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    with pytest.raises(BlockedAddressError):
        public_address("hooks.slack.com", 443)
