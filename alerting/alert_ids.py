"""An alert's identity: the hash of its tenant, type and dedupe key, its items' keys, and
the id the API shows (hash and sequence number)."""

from __future__ import annotations

import hashlib

from core.catalogue.models import Event
from core.security.tenants import DEFAULT_TENANT


def key_hash(tenant: str, type_: str, dedupe_key: str) -> str:
    """Two tenants' alerts of one type and key are two alerts."""
    raw = f"{tenant}\0{type_}\0{dedupe_key}"
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


def tenant_of(event: Event) -> str:
    return event.tenant or DEFAULT_TENANT


def alert_pk(khash: str) -> str:
    return f"ALERT#{khash}"


def alert_sk(seq: int) -> str:
    return f"A#{seq:08d}"


def alert_id_of(khash: str, seq: int) -> str:
    return f"{khash}-{seq}"


def parse_alert_id(alert_id: str) -> tuple[str, int] | None:
    khash, _, seq = alert_id.partition("-")
    if len(khash) != 24 or not seq.isdigit() or not 0 < int(seq) < 10**8:
        return None
    return khash, int(seq)
