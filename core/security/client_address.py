"""The client address of a request, for limits kept per client (failed authentications).

Behind a load balancer every request's TCP peer is the balancer, so a limit keyed on the
peer lets one client lock out all the others. `X-Forwarded-For` names the real client, but
a client may send that header itself with any value, so it is believed only from a trusted
proxy (`HERALD_TRUSTED_PROXIES`, CIDRs): when the peer is one, the header is read from the
right (each proxy appends the address it received the request from) past every trusted
proxy, and the first address that is not one is the client. Whatever a client wrote further
left is never read. A peer that is not trusted is the client, whatever the header says.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _trusted(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(peer: str, forwarded_for: Iterable[str], trusted: Sequence[Network]) -> str:
    """The client behind `peer`: the right-most `X-Forwarded-For` hop that is not a trusted
    proxy when `peer` is one, else `peer` itself. `forwarded_for` is every value of the
    header, in order (several headers read as one list)."""
    if not trusted or not _trusted(peer, trusted):
        return peer
    hops = [h.strip() for value in forwarded_for for h in value.split(",") if h.strip()]
    client = peer
    for hop in reversed(hops):
        client = hop
        if not _trusted(hop, trusted):
            break
    return client
