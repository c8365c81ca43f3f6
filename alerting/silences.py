"""Silences: mute the notifications of matching alerts for a time window.

As in Alertmanager, a silence does not stop alerts from opening, counting or resolving; it
only keeps them from notifying while it is active. A reminder that falls due during the
silence is sent by the first trigger after it ends (the alert never notified, or its
repeat interval has passed). Matchers name `type` or `dedupe_key` with `=`, `!=`, `=~`,
`!~` (regular expressions match the whole value); every matcher must hold.

Regular expressions are RE2's (as Alertmanager's, which are Go's): matched in time linear in
the key, never by backtracking, so no pattern can hold up the router, which matches every
alert event against every silence. Backreferences and lookaround are refused when the
silence is put.

Stored as `SILENCE#<tenant>#<id>` items in by_entity under `entity = SILENCE`, sorted by their end,
so "not yet ended" is one Query. The router reads them once per `ttl` seconds.
"""

from __future__ import annotations

import functools
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

import re2
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.aws import dynamo
from core.catalogue.models import iso, utcnow
from core.security.tenants import DEFAULT_TENANT

ENTITY_SILENCE = "SILENCE"
EARLIEST, LATEST = datetime(2000, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC)


class Matcher(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Literal["type", "dedupe_key"]
    op: Literal["=", "!=", "=~", "!~"] = "="
    value: str = Field(min_length=1, max_length=256)

    @model_validator(mode="after")
    def valid_regex(self) -> Matcher:
        if self.op in ("=~", "!~"):
            try:
                _compiled(self.value)
            except re2.error as exc:
                raise ValueError(f"value: not an RE2 regular expression: {_reason(exc)}") from exc
        return self

    def matches(self, labels: dict[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = _compiled(self.value).fullmatch(actual) is not None
        return found if self.op == "=~" else not found


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # a bad pattern is the caller's 422, not a log line
    return options


_OPTIONS = _options()


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re2._Regexp:
    """RE2 runs in time linear in the input: no catastrophic backtracking."""
    return re2.compile(pattern, _OPTIONS)


def _reason(exc: BaseException) -> str:
    detail = exc.args[0] if exc.args else exc
    return detail.decode(errors="replace") if isinstance(detail, bytes) else str(detail)


class SilenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$", description="Give one to replace it."
    )
    matchers: list[Matcher] = Field(min_length=1, max_length=20)
    starts_at: datetime | None = Field(default=None, description="Default: now.")
    ends_at: datetime
    comment: str = Field(default="", max_length=1000)
    created_by: str = Field(default="", max_length=200)

    @field_validator("starts_at", "ends_at")
    @classmethod
    def aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("needs a time zone, e.g. 2030-01-01T00:00:00Z")
        if value is not None and not EARLIEST <= value <= LATEST:
            raise ValueError("must be between the years 2000 and 9000")
        return value

    @model_validator(mode="after")
    def ordered(self) -> SilenceIn:
        start = self.starts_at or utcnow()
        if self.ends_at <= start:
            raise ValueError("ends_at must be after starts_at")
        return self


class Silence(BaseModel):
    id: str
    tenant: str = DEFAULT_TENANT
    matchers: list[Matcher]
    starts_at: str
    ends_at: str
    comment: str = ""
    created_by: str = ""
    created_at: str

    def active(self, now: datetime) -> bool:
        return self.starts_at <= iso(now) < self.ends_at

    def mutes(self, type_: str, dedupe_key: str) -> bool:
        labels = {"type": type_, "dedupe_key": dedupe_key}
        return all(m.matches(labels) for m in self.matchers)


class SilenceStore:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self._db = dynamodb
        self._table = table

    def put(self, body: SilenceIn, tenant: str = DEFAULT_TENANT) -> Silence:
        """A silence mutes its tenant's alerts only; its id is the tenant's too."""
        silence = Silence(
            id=body.id or uuid.uuid4().hex,
            tenant=tenant,
            matchers=body.matchers,
            starts_at=iso(body.starts_at or utcnow()),
            ends_at=iso(body.ends_at),
            comment=body.comment,
            created_by=body.created_by,
            created_at=iso(utcnow()),
        )
        item = {
            dynamo.PK: f"SILENCE#{tenant}#{silence.id}",
            dynamo.SK: "SILENCE",
            "entity": ENTITY_SILENCE,
            dynamo.GSI_SORT: f"{silence.ends_at}#{silence.id}",
            "silence_json": silence.model_dump_json(),
            # Kept a while after it ends, so GET /silences can show what muted an alert.
            dynamo.TTL_ATTRIBUTE: int(datetime.fromisoformat(silence.ends_at).timestamp())
            + 7 * 86400,
        }
        self._db.put_item(TableName=self._table, Item=dynamo.to_item(item))
        return silence

    def expire(self, silence_id: str, tenant: str = DEFAULT_TENANT) -> Silence | None:
        """End a silence now (Alertmanager's expire); None when there is no such silence."""
        key = {dynamo.PK: {"S": f"SILENCE#{tenant}#{silence_id}"}, dynamo.SK: {"S": "SILENCE"}}
        resp = self._db.get_item(TableName=self._table, Key=key, ConsistentRead=True)
        if "Item" not in resp:
            return None
        silence = Silence.model_validate_json(dynamo.from_item(resp["Item"])["silence_json"])
        now = utcnow()
        if silence.ends_at <= iso(now):
            return silence
        if silence.starts_at >= iso(now):  # not started yet: gone entirely
            self._db.delete_item(TableName=self._table, Key=key)
            return silence
        body = SilenceIn(
            id=silence.id,
            matchers=silence.matchers,
            starts_at=datetime.fromisoformat(silence.starts_at),
            ends_at=now,
            comment=silence.comment,
            created_by=silence.created_by,
        )
        return self.put(body, tenant)

    def unexpired(self, now: datetime | None = None, tenant: str | None = None) -> list[Silence]:
        """Silences not yet ended (active or future), soonest end first; of one tenant, or
        of every tenant (None)."""
        found: list[Silence] = []
        args: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": dynamo.GSI_BY_ENTITY,
            "KeyConditionExpression": "entity = :e AND created_key > :now",
            "ExpressionAttributeValues": {
                ":e": {"S": ENTITY_SILENCE},
                ":now": {"S": iso(now or utcnow())},
            },
        }
        while True:
            resp = self._db.query(**args)
            for item in resp.get("Items", []):
                silence = Silence.model_validate_json(dynamo.from_item(item)["silence_json"])
                if tenant is None or silence.tenant == tenant:
                    found.append(silence)
            if "LastEvaluatedKey" not in resp:
                return found
            args["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


class SilenceCache:
    """The unexpired silences, read at most once per `ttl` seconds per process: a new
    silence takes effect within `ttl`, and routing an event costs no extra read."""

    def __init__(
        self, store: SilenceStore, ttl: float = 5.0, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self._store = store
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._until = 0.0
        self._silences: list[Silence] = []

    def mutes(self, tenant: str, type_: str, dedupe_key: str) -> bool:
        with self._lock:
            if time.monotonic() >= self._until:
                self._silences = self._store.unexpired(self._clock())
                self._until = time.monotonic() + self._ttl
            silences = self._silences
        now = self._clock()
        return any(
            s.tenant == tenant and s.active(now) and s.mutes(type_, dedupe_key) for s in silences
        )
