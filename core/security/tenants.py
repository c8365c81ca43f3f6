"""Tenants: who owns an API key, and so which events, users and topics it sees.

Every API key has an owner. What a key creates belongs to its owner, and a key sees only
its owner's things. The `admin` scope is every scope on its own tenant's things; only the
`operator` scope (made from the command line, or the bootstrap key) reads and lists every
tenant's events and works on dead letters, rules and every tenant's keys.

- Events carry their `tenant`; reads check it (a foreign event is a 404, as if it did not
  exist, so ids leak nothing) and listings query the
  tenant's shards of `events_by_tenant` (no Scan).
- User ids and topic names are stored qualified, `<tenant>~<id>`, so two tenants' `u-1`
  are two users and an event can only reach its own tenant's users and subscribers. The
  router needs no knowledge of tenants: it finds what the qualified ids name.
- The tenant `default` keeps unqualified ids: keys made before tenants existed, and the
  bootstrap key of `make run`, go on addressing the same users and topics.
- Idempotency keys are per tenant: two tenants sending `Idempotency-Key: k` get two events.
- A client's `event_id` is stored qualified too (`<tenant>~<id>`, bare for `default`): two
  tenants' `ev-1` are two events, and a tenant can neither take another's id nor learn that
  it exists. Herald's own ids (random, or from the tenant's idempotency namespace) are bare
  and never collide; a tenant's lookup tries both forms and answers only its own event.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

DEFAULT_TENANT = "default"
TENANT_PATTERN = r"^[a-z0-9][a-z0-9-]{0,31}$"
SEPARATOR = "~"  # never in a client's user id or topic name (their patterns exclude it)
_TENANT = re.compile(TENANT_PATTERN)
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# Keys map to event ids through a fixed namespace, so every API instance agrees; each
# tenant but `default` (whose ids predate tenants) gets its own namespace derived from it.
IDEMPOTENCY_NAMESPACE = uuid.UUID("5b1f8f1e-6c43-4a8e-9a55-0d7e3f1c2a90")


def check_tenant(name: str) -> str:
    if not _TENANT.match(name):
        raise ValueError(
            "a tenant is 1 to 32 lower-case letters, digits and dashes, starting with a "
            f"letter or digit; got {name!r}"
        )
    return name


@dataclass(frozen=True)
class Tenant:
    name: str = DEFAULT_TENANT
    #: An operator's key: it reads every tenant's events (but writes as its own tenant).
    operator: bool = False

    def qualify(self, local_id: str) -> str:
        """The stored form of a user id or topic name of this tenant."""
        if self.name == DEFAULT_TENANT:
            return local_id
        return f"{self.name}{SEPARATOR}{local_id}"

    def local(self, stored_id: str) -> str:
        """The id as this tenant knows it (a foreign qualified id stays whole)."""
        prefix = f"{self.name}{SEPARATOR}"
        return stored_id.removeprefix(prefix) if self.name != DEFAULT_TENANT else stored_id

    def owns(self, tenant: str | None) -> bool:
        """Whether a thing of `tenant` (None: made before tenants, so `default`) is ours."""
        return (tenant or DEFAULT_TENANT) == self.name

    def can_read(self, tenant: str | None) -> bool:
        return self.operator or self.owns(tenant)

    def event_lookups(self, local_id: str) -> tuple[str, ...]:
        """The stored ids an event id of this tenant may have: a client's (qualified) and
        Herald's (bare, or a client's made before client ids were qualified), the likelier
        first; the caller checks the owner of what it finds."""
        qualified = self.qualify(local_id)
        if qualified == local_id:
            return (local_id,)
        return (local_id, qualified) if _UUID.match(local_id) else (qualified, local_id)

    def event_id_for(self, idempotency_key: str) -> str:
        namespace = IDEMPOTENCY_NAMESPACE
        if self.name != DEFAULT_TENANT:
            namespace = uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"tenant:{self.name}")
        return str(uuid.uuid5(namespace, idempotency_key))


#: Auth switched off (HERALD_AUTH_ENABLED=false): one tenant that sees everything.
UNAUTHENTICATED = Tenant(DEFAULT_TENANT, operator=True)
