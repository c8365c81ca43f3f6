"""API-key authentication, scopes and a rate limit per key.

Keys come as `Authorization: Bearer <key>` or `X-API-Key: <key>`. No key or an unknown or
revoked key is a 401; a key without the route's scope is a 403; a key over its rate is a 429
with Retry-After. `/`, `/docs`, `/openapi.json` and `/health` stay open, and the provider
webhooks authenticate by their signatures instead.

Verified keys are cached for `HERALD_API_KEY_CACHE_SECONDS` so a busy client costs one
GetItem per period, not one per request; a key revoked by another process therefore works
that long, and the process that revokes it forgets it at once (`forget`).

Work before authentication is bounded, because anybody can send keys:
- a key that is not well formed or is longer than `TOKEN_MAX` is refused without a lookup;
- a refused key is remembered (a negative cache, bounded, separate from the verified keys,
  so junk keys can neither cost a read each time nor push valid keys out);
- each client address may fail `HERALD_AUTH_FAILURE_BURST` times and then
  `HERALD_AUTH_FAILURE_RATE_PER_SECOND`; past that its keys are 429 without a lookup unless
  they are already verified. The client address is the TCP peer, or, when the peer is one
  of `HERALD_TRUSTED_PROXIES`, the right-most untrusted hop of `X-Forwarded-For`
  (`core.security.client_address`): behind a load balancer each client is counted apart.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Protocol

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from core.security.api_keys import ApiKey, parse
from core.security.client_address import Network, client_address
from core.security.rate_limit import TokenBucket

#: Verified keys held (only real keys get in, so this is the number of keys in use).
VALID_MAX = 10_000
#: Refused keys remembered; the oldest goes first.
REFUSED_MAX = 10_000
#: Client addresses whose failures are counted; the oldest goes first.
CLIENTS_MAX = 10_000

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key.")
bearer = HTTPBearer(auto_error=False, description="An API key as a bearer token.")


class KeyLookup(Protocol):
    def verify(self, token: str) -> ApiKey | None: ...

    def revoke(self, key_id: str) -> bool: ...

    def list_keys(self) -> list[ApiKey]: ...

    def owner_of(self, key_id: str) -> str | None: ...


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Authenticator:
    def __init__(
        self,
        store: KeyLookup,
        rate: float,
        burst: float,
        enabled: bool = True,
        *,
        cache_seconds: float = 30.0,
        failure_rate: float = 1.0,
        failure_burst: float = 20.0,
        valid_max: int = VALID_MAX,
        refused_max: int = REFUSED_MAX,
        clients_max: int = CLIENTS_MAX,
        trusted_proxies: tuple[Network, ...] = (),
    ) -> None:
        self.trusted_proxies = trusted_proxies
        self.store = store
        self.enabled = enabled
        self.cache_seconds = cache_seconds
        self._rate = rate
        self._burst = burst
        self._failure_rate = failure_rate
        self._failure_burst = failure_burst
        self._valid_max = valid_max
        self._refused_max = refused_max
        self._clients_max = clients_max
        self._valid: OrderedDict[str, tuple[float, ApiKey]] = OrderedDict()
        self._refused: OrderedDict[str, float] = OrderedDict()
        self._failures: OrderedDict[str, TokenBucket] = OrderedDict()
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def cached(self, token: str) -> tuple[bool, ApiKey | None]:
        """(found, key) from the caches alone: no I/O, so the event loop may call it and
        spare a busy client's requests a trip through the thread pool. Found with None means
        refused (malformed, or refused recently)."""
        if parse(token) is None:
            return True, None
        digest = _digest(token)
        now = time.monotonic()
        valid = self._valid.get(digest)
        if valid is not None and valid[0] > now:
            return True, valid[1]
        refused = self._refused.get(digest)
        if refused is not None and refused > now:
            return True, None
        return False, None

    def verify(self, token: str) -> ApiKey | None:
        found, key = self.cached(token)
        if found:
            return key
        key = self.store.verify(token)
        if key is not None and key.revoked:
            key = None
        expires = time.monotonic() + self.cache_seconds
        digest = _digest(token)
        with self._lock:
            if key is None:
                _put_bounded(self._refused, digest, expires, self._refused_max)
            else:
                _put_bounded(self._valid, digest, (expires, key), self._valid_max)
        return key

    def forget(self, key_id: str) -> None:
        """Drop a key from this process's cache (it was just revoked here)."""
        with self._lock:
            for digest in [d for d, (_, k) in self._valid.items() if k.key_id == key_id]:
                del self._valid[digest]

    def failure_wait(self, client: str) -> float:
        """Seconds until `client` may fail again (0.0: it may), taking nothing."""
        bucket = self._failures.get(client)
        return 0.0 if bucket is None else bucket.wait_time()

    def failed(self, client: str) -> None:
        with self._lock:
            bucket = self._failures.get(client)
            if bucket is None:
                bucket = TokenBucket(self._failure_rate, self._failure_burst)
                _put_bounded(self._failures, client, bucket, self._clients_max)
        bucket.try_acquire()

    def retry_after(self, key: ApiKey) -> float:
        """0 when the key may go on, else seconds until it may."""
        with self._lock:
            bucket = self._buckets.get(key.key_id)
            if bucket is None:
                bucket = self._buckets[key.key_id] = TokenBucket(self._rate, self._burst)
        return bucket.try_acquire()


def _put_bounded(cache: OrderedDict[str, Any], key: str, value: Any, limit: int) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > limit:
        cache.popitem(last=False)


def _token(header_key: str | None, credentials: HTTPAuthorizationCredentials | None) -> str | None:
    if header_key:
        return header_key
    if credentials is not None and credentials.scheme.lower() == "bearer":
        return credentials.credentials
    return None


def _too_many(wait: float, message: str) -> HTTPException:
    return HTTPException(429, message, headers={"Retry-After": str(max(1, math.ceil(wait)))})


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


async def authenticate(request: Request, token: str | None) -> ApiKey:
    """The verified key of `token`, or the 401 / 429 that refuses it."""
    auth: Authenticator = request.app.state.services.auth
    peer = request.client.host if request.client else "unknown"
    client = client_address(peer, request.headers.getlist("x-forwarded-for"), auth.trusted_proxies)
    if not token:
        raise _unauthorized("X-API-Key: an API key is required")
    found, key = auth.cached(token)
    if not found:
        wait = auth.failure_wait(client)
        if wait > 0:
            raise _too_many(wait, "X-API-Key: too many failed authentications; retry later")
        key = await run_in_threadpool(auth.verify, token)
    if key is None:
        auth.failed(client)
        raise _unauthorized("X-API-Key: unknown or revoked key")
    return key


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
        key = await authenticate(request, _token(header_key, credentials))
        scope = read if request.method in ("GET", "HEAD") else (write or read)
        if not key.allows(scope):
            raise HTTPException(403, f"X-API-Key: this key lacks the {scope!r} scope")
        wait = auth.retry_after(key)
        if wait > 0:
            raise _too_many(wait, "X-API-Key: rate limit reached; retry later")
        request.state.api_key = key
        return key

    return check


def scoped(read: str, write: str | None = None) -> list[Any]:
    return [Depends(require(read, write))]
