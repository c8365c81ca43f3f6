"""Which chat webhook URLs a user may give: the allow-list of hosts and the address rules.

A user's chat webhook is user input that the workers POST to, so without these rules any
key with `users:write` could make the workers call internal addresses (the cloud metadata
service, admin consoles on the private network) and read the answers back through the
notification's history. The rules are checked twice: when the API accepts the URL and
again by the notifier before every send (settings change; stored profiles predate them).
The address the host resolves to is checked at connect time, by the notifier's transport.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from core.platform.settings import DEFAULT_CHAT_WEBHOOK_HOSTS, parse_hosts

__all__ = ["DEFAULT_CHAT_WEBHOOK_HOSTS", "host_allowed", "parse_hosts", "webhook_url_problem"]


def host_allowed(host: str, patterns: tuple[str, ...]) -> bool:
    host = host.lower().rstrip(".")
    for pattern in patterns:
        if pattern.startswith("*."):
            suffix = pattern[1:]
            if host.endswith(suffix) and len(host) > len(suffix):
                return True
        elif host == pattern:
            return True
    return False


def webhook_url_problem(url: str, patterns: tuple[str, ...]) -> str | None:
    """Why `url` may not be used as a chat webhook, or None when it may.

    https only (the URL is a credential), no user info (`https://hooks.slack.com@10.0.0.1/`
    names another host), the default port, and a host on the allow-list; an IP literal is
    never on it unless an operator lists that very address.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme != "https":
        return "must be an https URL"
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return "must not carry user information"
    if port not in (None, 443):
        return "must use the default https port"
    host = parts.hostname or ""
    if not host_allowed(host, patterns):
        allowed = ", ".join(patterns) or "(none)"
        return f"host {host!r} is not an allowed chat webhook host ({allowed})"
    return None


def is_public_address(address: str) -> bool:
    """Whether a resolved address is a public unicast one: not loopback, private, link-local
    (the 169.254.169.254 metadata service), shared, reserved, multicast or unspecified; an
    IPv4 address mapped or embedded in IPv6 is judged as itself."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is not None:
            ip = embedded
        elif ip.teredo is not None:
            return False
    return bool(ip.is_global) and not ip.is_multicast
