"""A keep-alive transport under the SendGrid SDK.

The SDK's HTTP layer (`python_http_client.Client`) builds a urllib opener with a dozen
handlers for every call (its proxy handler reads the whole environment each time), and
urllib asks for `Connection: close`, so each email also paid a TCP (on the real API, TLS)
handshake: together more than half of a send's CPU. `PooledClient` keeps the SDK's API (URL
building, headers, `Response`, the `HTTPError` family with status, body and headers) and
replaces only the call at the end of the chain (`.post(...)`): the request goes through
one urllib3 pool shared by every thread of the process, so connections stay open between
sends.

What urllib did and the pool must keep doing: each call's timeout (connect and every read),
no retry of its own (the worker's retry policy decides), proxies from the environment, and
failures of the same kinds (`TimeoutError`, `OSError`), which `notifiers.email` translates.
Redirects are not followed: a 3xx from a mail API is an answer to report, not to chase.
"""

from __future__ import annotations

import functools
import io
import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

import urllib3
from python_http_client import Client
from python_http_client.client import Response
from python_http_client.exceptions import handle_error


def pool_for(host: str, connections: int) -> urllib3.PoolManager:
    """One pool per provider host; through the environment's proxy when urllib would use one.

    `connections` is how many the pool keeps open: as many as the threads that send at once
    (more are opened when needed, and closed after use instead of kept)."""
    parts = urlsplit(host)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        return urllib3.ProxyManager(proxy, maxsize=connections, block=False)
    return urllib3.PoolManager(maxsize=connections, block=False)


class _Answer:
    """A urllib3 response in the shape `python_http_client.Response` reads (a urllib one)."""

    def __init__(self, response: urllib3.BaseHTTPResponse) -> None:
        self._response = response

    def getcode(self) -> int:
        return self._response.status

    def read(self) -> bytes:
        return self._response.data

    def info(self) -> Any:
        return self._response.headers


class PooledClient(Client):
    """`python_http_client.Client` whose requests share `pool` and its open connections."""

    def __init__(self, host: str, *, pool: urllib3.PoolManager, **kwargs: Any) -> None:
        super().__init__(host, **kwargs)
        self._pool = pool

    def _build_client(self, name: str | None = None) -> PooledClient:
        # The base class builds a plain Client for every URL segment (`client.mail.send`);
        # the segments must keep the pool.
        url_path = [*self._url_path, name] if name else self._url_path
        return PooledClient(
            self.host,
            pool=self._pool,
            version=self._version,
            request_headers=self.request_headers,
            url_path=url_path,
            append_slash=self.append_slash,
            timeout=self.timeout,
        )

    def __getattr__(self, name: str) -> Any:
        # The verbs (`client.mail.send.post(...)`) end the chain; the base class's version
        # builds a urllib opener with all its handlers on every call, which profiled at a
        # third of a send's CPU. URL segments and `version` stay the base class's.
        if name in self.methods:
            return functools.partial(self._call, name.upper())
        return super().__getattr__(name)

    def _call(
        self,
        method: str,
        request_body: Any = None,
        query_params: dict[str, Any] | None = None,
        request_headers: dict[str, str] | None = None,
        timeout: float | None = None,
        **_: Any,
    ) -> Response:
        """The base class's request, body rules included (JSON unless another Content-Type
        is set); per-call headers apply to this call only instead of joining the headers
        every thread shares."""
        headers = {**self.request_headers, **(request_headers or {})}
        body: bytes | None = None
        if request_body is not None:
            if headers.get("Content-Type", "application/json") != "application/json":
                body = request_body.encode("utf-8")
            else:
                headers["Content-Type"] = "application/json"
                body = json.dumps(request_body).encode("utf-8")
        url = self._build_url(query_params)
        seconds = timeout or self.timeout
        try:
            response = self._pool.request(
                method,
                url,
                body=body,
                headers=headers,
                timeout=urllib3.Timeout(connect=seconds, read=seconds),
                retries=False,
                redirect=False,
            )
        except urllib3.exceptions.NewConnectionError as exc:
            # Refused or unresolvable (urllib3 derives this from its timeout error too).
            raise ConnectionError(f"{method} {url}: {exc}") from exc
        except urllib3.exceptions.TimeoutError as exc:
            raise TimeoutError(f"{method} {url}: {exc}") from exc
        except urllib3.exceptions.HTTPError as exc:
            # Reset, unreadable answer: what urllib raised as OSError / HTTPException.
            raise ConnectionError(f"{method} {url}: {exc}") from exc
        if not 200 <= response.status < 300:
            refusal = urllib.error.HTTPError(
                url,
                response.status,
                response.reason or "",
                response.headers,  # type: ignore[arg-type]
                io.BytesIO(response.data),
            )
            raise handle_error(refusal)
        return Response(_Answer(response))
