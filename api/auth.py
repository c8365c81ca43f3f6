"""API-key authentication, scopes and a rate limit per key.

Keys come as `Authorization: Bearer <key>` or `X-API-Key: <key>`. No key or an unknown or
revoked key is a 401; a key without the route's scope is a 403; a key over its rate is a 429
with Retry-After. `/`, `/docs`, `/openapi.json` and `/health` stay open, and the provider
webhooks authenticate by their signatures instead.

Verified keys are cached for a short time so a busy client costs one GetItem per TTL, not
one per request; a revocation therefore takes effect within that TTL.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from core.api_keys import ApiKey, ApiKeyStore
from core.rate_limit import TokenBucket

CACHE_SECONDS = 30.0

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key.")
bearer = HTTPBearer(auto_error=False, description="An API key as a bearer token.")


class Authenticator:
    def __init__(self, store: ApiKeyStore, rate: float, burst: float, enabled: bool = True) -> None:
        self.store = store
        self.enabled = enabled
        self._rate = rate
        self._burst = burst
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def cached(self, token: str) -> tuple[bool, ApiKey | None]:
        """(found, key) from the cache alone: no I/O, so the event loop may call it and
        spare a busy client's requests a trip through the thread pool."""
        cached = self._cache.get(token)
        if cached is not None and cached[0] > time.monotonic():
            return True, cached[1]
        return False, None

    def verify(self, token: str) -> ApiKey | None:
        found, key = self.cached(token)
        if found:
            return key
        now = time.monotonic()
        key = self.store.verify(token)
        with self._lock:
            if len(self._cache) > 10_000:  # unknown tokens must not grow memory without bound
                self._cache.clear()
            self._cache[token] = (now + CACHE_SECONDS, key)
        return key

    def retry_after(self, key: ApiKey) -> float:
        """0 when the key may go on, else seconds until it may."""
        with self._lock:
            bucket = self._buckets.get(key.key_id)
            if bucket is None:
                bucket = self._buckets[key.key_id] = TokenBucket(self._rate, self._burst)
        return bucket.try_acquire()


def _token(header_key: str | None, credentials: HTTPAuthorizationCredentials | None) -> str | None:
    if header_key:
        return header_key
    if credentials is not None and credentials.scheme.lower() == "bearer":
        return credentials.credentials
    return None


def require(read: str, write: str | None = None) -> Callable[..., Awaitable[ApiKey | None]]:
    """A dependency for a router: `read` scope for GET/HEAD, `write` for the rest."""

    async def check(
        request: Request,
        header_key: Annotated[str | None, Security(api_key_header)] = None,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)] = None,
    ) -> ApiKey | None:
        auth: Authenticator = request.app.state.services.auth
        if not auth.enabled:
            return None
        token = _token(header_key, credentials)
        if not token:
            raise HTTPException(
                401, "X-API-Key: an API key is required", headers={"WWW-Authenticate": "Bearer"}
            )
        found, key = auth.cached(token)
        if not found:
            key = await run_in_threadpool(auth.verify, token)
        if key is None or key.revoked:
            raise HTTPException(
                401, "X-API-Key: unknown or revoked key", headers={"WWW-Authenticate": "Bearer"}
            )
        scope = read if request.method in ("GET", "HEAD") else (write or read)
        if not key.allows(scope):
            raise HTTPException(403, f"X-API-Key: this key lacks the {scope!r} scope")
        wait = auth.retry_after(key)
        if wait > 0:
            raise HTTPException(
                429,
                "X-API-Key: rate limit reached; retry later",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        return key

    return check


def scoped(read: str, write: str | None = None) -> list[Any]:
    return [Depends(require(read, write))]
