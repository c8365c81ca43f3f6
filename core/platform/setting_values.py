"""The values settings take that need more than a type: the sandbox's public credentials,
the chat webhook hosts by default, and the parsing of host and network lists, shared by
the settings and the code that checks against them."""

from __future__ import annotations

import ipaddress

#: Twilio credentials of the sandbox: public (they are in this file), so anybody could sign
#: status callbacks with them. Only sandbox mode may run with them.
SANDBOX_TWILIO_ACCOUNT_SID = "ACsandbox00000000000000000000000000"
SANDBOX_TWILIO_AUTH_TOKEN = "sandbox-token"


#: The real Slack and Microsoft Teams incoming-webhook hosts (Teams: the connector host of
#: each tenant, the legacy connector host, and Power Automate workflow triggers).
DEFAULT_CHAT_WEBHOOK_HOSTS = (
    "hooks.slack.com,*.webhook.office.com,outlook.office.com,*.logic.azure.com"
)


def parse_hosts(value: str) -> tuple[str, ...]:
    """`a.example,*.b.example` → lower-cased patterns; `*.` matches any subdomain."""
    return tuple(h.strip().lower() for h in value.split(",") if h.strip())


IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(value: str) -> tuple[IpNetwork, ...]:
    """`10.0.0.0/8, 192.168.1.7` as networks (a bare address is a /32 or /128); a value
    that is neither raises ValueError naming it."""
    networks: list[IpNetwork] = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"not a CIDR or an IP address: {part!r}") from None
    return tuple(networks)
