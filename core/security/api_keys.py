"""API keys with scopes, stored hashed.

A key is `hk_<key_id>_<secret>`. Only a SHA-256 of the whole key is stored (the secret is
random and long, so a slow password hash would add nothing); the key id finds the record
with one GetItem, and the hash is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from core.aws import dynamo
from core.aws import errors as aws_errors
from core.catalogue.models import iso, utcnow
from core.platform.settings_inline import parse_prefixes
from core.security.tenants import DEFAULT_TENANT, Tenant, check_tenant

SCOPES = ("events:write", "events:read", "users:write", "admin", "operator")
#: Every scope on its own tenant's things (keys, dead letters stay the operator's).
ADMIN = "admin"
#: Every scope on every tenant's things: dead letters, rules, any key. Made only from the
#: command line (AWS credentials) or as the bootstrap key; no request creates one.
OPERATOR = "operator"
ENTITY = "APIKEY"
PREFIX = "hk"


def _key(key_id: str) -> dict[str, Any]:
    return {dynamo.PK: {"S": f"APIKEY#{key_id}"}, dynamo.SK: {"S": "KEY"}}


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


#: Longest key accepted at all; Herald's own keys are about 50 characters. Longer ones are
#: refused before any lookup (DynamoDB refuses keys over 2 KB with an error of its own).
TOKEN_MAX = 200
_KEY_ID = re.compile(r"^[A-Za-z0-9-]{1,32}$")


def parse(token: str) -> str | None:
    """The key id of a well-formed key, else None: `hk_`, an id of at most 32 letters,
    digits and dashes, `_`, a secret, and at most TOKEN_MAX characters in all."""
    if len(token) > TOKEN_MAX:
        return None
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or not _KEY_ID.match(parts[1]) or not parts[2]:
        return None
    return parts[1]


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    scopes: tuple[str, ...]
    created_at: str
    revoked: bool = False
    owner: str = DEFAULT_TENANT
    #: E.164 prefixes this key's inline SMS/WhatsApp numbers must start with (None: the
    #: deployment's only); see core/security/inline_recipients.py.
    inline_prefixes: tuple[str, ...] | None = None
    #: Inline recipients a UTC day for this key (None: the deployment's; 0: no quota).
    inline_daily_quota: int | None = None

    def allows(self, scope: str) -> bool:
        if self.revoked:
            return False
        if scope in self.scopes or OPERATOR in self.scopes:
            return True
        return scope != OPERATOR and ADMIN in self.scopes

    def tenant(self) -> Tenant:
        return Tenant(self.owner, operator=OPERATOR in self.scopes)

    def public(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "name": self.name,
            "scopes": list(self.scopes),
            "created_at": self.created_at,
            "revoked": self.revoked,
            "owner": self.owner,
            "inline_prefixes": list(self.inline_prefixes) if self.inline_prefixes else None,
            "inline_daily_quota": self.inline_daily_quota,
        }


class UnknownScope(ValueError):
    pass


def check_inline_limits(
    prefixes: str | None, quota: int | None
) -> tuple[tuple[str, ...] | None, int | None]:
    """A new key's own inline limits from what its creator wrote (`+1,+44`, a count);
    ValueError naming what is wrong."""
    parsed = parse_prefixes(prefixes) if prefixes is not None else None
    if prefixes is not None and not parsed:
        raise ValueError("inline prefixes: give at least one, such as +44")
    if quota is not None and quota < 0:
        raise ValueError(f"inline daily quota: 0 (none) or more, got {quota}")
    return parsed, quota


def _check_scopes(scopes: tuple[str, ...]) -> None:
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise UnknownScope(f"scopes must be some of {', '.join(SCOPES)}; got {list(scopes)}")


class ApiKeyStore:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self._db = dynamodb
        self._table = table

    def create(
        self,
        name: str,
        scopes: tuple[str, ...],
        token: str | None = None,
        owner: str = DEFAULT_TENANT,
        inline_prefixes: tuple[str, ...] | None = None,
        inline_daily_quota: int | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key of tenant `owner`; the token is returned once and never stored."""
        _check_scopes(scopes)
        check_tenant(owner)
        inline_prefixes, inline_daily_quota = check_inline_limits(
            ",".join(inline_prefixes) if inline_prefixes is not None else None,
            inline_daily_quota,
        )
        if token is None:
            token = f"{PREFIX}_{secrets.token_hex(6)}_{secrets.token_urlsafe(24)}"
        key_id = parse(token)
        if key_id is None:
            raise ValueError(
                "a key looks like hk_<id>_<secret>: an id of up to 32 letters, digits and "
                f"dashes, at most {TOKEN_MAX} characters in all"
            )
        created = iso(utcnow())
        key = ApiKey(
            key_id,
            name,
            scopes,
            created,
            owner=owner,
            inline_prefixes=inline_prefixes,
            inline_daily_quota=inline_daily_quota,
        )
        limits: dict[str, Any] = {}
        if inline_prefixes is not None:
            limits["inline_prefixes"] = list(inline_prefixes)
        if inline_daily_quota is not None:
            limits["inline_daily_quota"] = inline_daily_quota
        item = dynamo.to_item(
            {
                **limits,
                "entity": ENTITY,
                dynamo.GSI_SORT: f"{created}#{key_id}",
                "key_id": key_id,
                "name": name,
                "scopes": list(scopes),
                "hash": digest(token),
                "created_at": created,
                "revoked": False,
                "owner": owner,
            }
        )
        item.update(_key(key_id))
        try:
            self._db.put_item(
                TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(PK)"
            )
        except ClientError as exc:
            if aws_errors.is_refusal(exc):
                raise ValueError(f"key id {key_id} exists") from exc
            raise
        return key, token

    def ensure(self, token: str, name: str, scopes: tuple[str, ...]) -> ApiKey:
        """Create this exact key unless it exists (the development bootstrap key); an
        existing one gains the scopes it lacks (a stack made before a scope existed)."""
        found = self.verify(token)
        if found is None:
            return self.create(name, scopes, token)[0]
        missing = [s for s in scopes if s not in found.scopes]
        if not missing:
            return found
        _check_scopes(scopes)
        merged = (*found.scopes, *missing)
        self._db.update_item(
            TableName=self._table,
            Key=_key(found.key_id),
            UpdateExpression="SET scopes = :s",
            ExpressionAttributeValues={":s": dynamo.to_item({"s": list(merged)})["s"]},
        )
        return ApiKey(
            found.key_id,
            found.name,
            merged,
            found.created_at,
            found.revoked,
            found.owner,
            found.inline_prefixes,
            found.inline_daily_quota,
        )

    def verify(self, token: str) -> ApiKey | None:
        key_id = parse(token)
        if key_id is None:
            return None
        item = self._db.get_item(TableName=self._table, Key=_key(key_id)).get("Item")
        if item is None:
            return None
        values = dynamo.from_item(item)
        if not hmac.compare_digest(str(values.get("hash", "")), digest(token)):
            return None
        return _from_values(values)

    def revoke(self, key_id: str) -> bool:
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_key(key_id),
                UpdateExpression="SET revoked = :t",
                ConditionExpression="attribute_exists(PK)",
                ExpressionAttributeValues={":t": {"BOOL": True}},
            )
        except ClientError as exc:
            if aws_errors.is_refusal(exc):
                return False
            raise
        return True

    def owner_of(self, key_id: str) -> str | None:
        """The tenant of a key, None when there is no such key."""
        item = self._db.get_item(
            TableName=self._table,
            Key=_key(key_id),
            ProjectionExpression="#o, key_id",
            ExpressionAttributeNames={"#o": "owner"},
        ).get("Item")
        if item is None:
            return None
        return str(dynamo.from_item(item).get("owner") or DEFAULT_TENANT)

    def list_keys(self) -> list[ApiKey]:
        """Every key, newest first (a Query on the entity index, never a Scan)."""
        keys: list[ApiKey] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": dynamo.GSI_BY_ENTITY,
            "KeyConditionExpression": "entity = :e",
            "ExpressionAttributeValues": {":e": {"S": ENTITY}},
            "ScanIndexForward": False,
        }
        while True:
            resp = self._db.query(**kwargs)
            keys += [_from_values(dynamo.from_item(i)) for i in resp.get("Items", [])]
            if "LastEvaluatedKey" not in resp:
                return keys
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


def _from_values(values: dict[str, Any]) -> ApiKey:
    return ApiKey(
        key_id=str(values["key_id"]),
        name=str(values.get("name", "")),
        scopes=tuple(values.get("scopes", [])),
        created_at=str(values.get("created_at", "")),
        revoked=bool(values.get("revoked", False)),
        owner=str(values.get("owner") or DEFAULT_TENANT),  # keys older than tenants
        inline_prefixes=tuple(values["inline_prefixes"]) if values.get("inline_prefixes") else None,
        inline_daily_quota=(
            int(values["inline_daily_quota"])
            if values.get("inline_daily_quota") is not None
            else None
        ),
    )
