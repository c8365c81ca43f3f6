"""Console sessions, kept in the stack's table so every API process reads the same ones.

A session is one item, `CONSOLE#<sha256 of the session id>` / `SESSION`, holding the id and
hash of the API key that signed in (never the key itself), the session's CSRF token and an
`expires_at` the table's TTL removes it by. The cookie carries the random session id; the
table holds only its hash, so a reader of the table cannot take over a session.

Each request reads its session (TTL deletion lags, so the expiry is checked too) and the
key's record, cached for `HERALD_API_KEY_CACHE_SECONDS` as the API caches verified keys: a
revoked key stops working in the console as soon as it does in the API.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from core.aws import dynamo
from core.aws import errors as aws_errors
from core.catalogue.models import iso, utcnow
from core.security import api_keys
from core.security.api_keys import ApiKey

#: How long a sign-in lasts: a working day, after which the key is asked for again.
SESSION_SECONDS = 8 * 3600
SESSION_SK = "SESSION"
#: Session ids and CSRF tokens: 32 random bytes, URL-safe.
TOKEN_BYTES = 32
#: Key records remembered per process; the oldest go first.
KEYS_MAX = 1000


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _key(session_id: str) -> dict[str, Any]:
    return {dynamo.PK: {"S": f"CONSOLE#{_hash(session_id)}"}, dynamo.SK: {"S": SESSION_SK}}


@dataclass(frozen=True)
class Session:
    session_id: str
    key_id: str
    key_hash: str
    csrf: str
    expires_at: int

    def csrf_matches(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf, str(token))


class SessionStore:
    def __init__(self, dynamodb: Any, table: str, key_cache_seconds: float = 30.0) -> None:
        self._db = dynamodb
        self._table = table
        self._key_cache_seconds = key_cache_seconds
        self._keys: dict[str, tuple[float, ApiKey | None, str]] = {}
        self._lock = threading.Lock()

    def create(self, key: ApiKey, token: str) -> Session:
        """A new session for a key just verified with `token` (only its hash is kept)."""
        session = Session(
            session_id=secrets.token_urlsafe(TOKEN_BYTES),
            key_id=key.key_id,
            key_hash=api_keys.digest(token),
            csrf=secrets.token_urlsafe(TOKEN_BYTES),
            expires_at=int(time.time()) + SESSION_SECONDS,
        )
        item = dynamo.to_item(
            {
                "entity": "CONSOLE_SESSION",
                "key_id": session.key_id,
                "key_hash": session.key_hash,
                "csrf": session.csrf,
                "created_at": iso(utcnow()),
                dynamo.TTL_ATTRIBUTE: session.expires_at,
            }
        )
        item.update(_key(session.session_id))
        # A plain put of a fresh random id: repeating it after a lost answer writes the same.
        aws_errors.retry(lambda: self._db.put_item(TableName=self._table, Item=item))
        return session

    def get(self, session_id: str) -> Session | None:
        """The session if it exists and has not expired (the TTL removes items late)."""
        if not session_id or len(session_id) > 100:
            return None
        resp = aws_errors.retry(
            lambda: self._db.get_item(TableName=self._table, Key=_key(session_id))
        )
        if "Item" not in resp:
            return None
        values = dynamo.from_item(resp["Item"])
        expires_at = int(values.get(dynamo.TTL_ATTRIBUTE, 0))
        if expires_at <= time.time():
            return None
        return Session(
            session_id=session_id,
            key_id=str(values["key_id"]),
            key_hash=str(values["key_hash"]),
            csrf=str(values["csrf"]),
            expires_at=expires_at,
        )

    def delete(self, session_id: str) -> None:
        if session_id and len(session_id) <= 100:
            aws_errors.retry(
                lambda: self._db.delete_item(TableName=self._table, Key=_key(session_id))
            )

    def key_of(self, session: Session) -> ApiKey | None:
        """The session's key while it is the same key and not revoked, else None."""
        now = time.monotonic()
        cached = self._keys.get(session.key_id)
        if cached is None or cached[0] <= now:
            # The key's record read by id, with the key store's own key layout and decoding
            # (there is no token to verify again: the session kept only its hash).
            resp = aws_errors.retry(
                lambda: self._db.get_item(TableName=self._table, Key=api_keys._key(session.key_id))
            )
            values = dynamo.from_item(resp["Item"]) if "Item" in resp else None
            key = api_keys._from_values(values) if values else None
            cached = (now + self._key_cache_seconds, key, str((values or {}).get("hash", "")))
            with self._lock:
                if len(self._keys) >= KEYS_MAX:
                    self._keys.pop(next(iter(self._keys)))
                self._keys[session.key_id] = cached
        _, key, stored_hash = cached
        if key is None or key.revoked or not hmac.compare_digest(stored_hash, session.key_hash):
            return None
        return key
