"""Signature Version 4 for the JSON protocols' requests: `POST /` with a JSON body.

The same canonical request botocore's `SigV4Auth` builds for these requests (tested
against it byte for byte), with the derived signing key kept per day and secret, where
botocore derives it again, four HMACs, on every call. Credentials are read on each call
from botocore's provider object, so refreshed role credentials are used as soon as botocore
refreshes them.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import NoCredentialsError

ALGORITHM = "AWS4-HMAC-SHA256"


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def amz_date(now: float | None = None) -> str:
    """The request's time as SigV4 writes it (UTC, seconds)."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))


class SigV4Signer:
    """Signs requests of one service in one region with the credentials `credentials()`
    returns (botocore's `Credentials` or `RefreshableCredentials`)."""

    def __init__(self, service: str, region: str, credentials: Callable[[], Any]) -> None:
        self.service = service
        self.region = region
        self._credentials = credentials
        self._keys: dict[tuple[str, str], bytes] = {}
        self._lock = threading.Lock()

    def _signing_key(self, secret: str, day: str) -> bytes:
        key = self._keys.get((secret, day))
        if key is None:
            key = _hmac(
                _hmac(_hmac(_hmac(f"AWS4{secret}".encode(), day), self.region), self.service),
                "aws4_request",
            )
            with self._lock:
                if len(self._keys) > 8:  # old days and rotated secrets
                    self._keys.clear()
                self._keys[(secret, day)] = key
        return key

    def sign(
        self, host: str, headers: dict[str, str], body: bytes, date: str | None = None
    ) -> None:
        """Add X-Amz-Date, the session token if any, and Authorization to `headers`, which
        hold every other header to be sent but Host (`host`, as sent) and User-Agent."""
        source = self._credentials()
        creds = source.get_frozen_credentials() if source is not None else None
        if creds is None or not creds.access_key or creds.secret_key is None:
            raise NoCredentialsError()
        date = date or amz_date()
        day = date[:8]
        headers["X-Amz-Date"] = date
        if creds.token:
            headers["X-Amz-Security-Token"] = creds.token
        canonical = sorted(
            [("host", host.strip())]
            + [(k.lower(), " ".join(v.split())) for k, v in headers.items()]
        )
        signed = ";".join(k for k, _ in canonical)
        request = "\n".join(
            [
                "POST",
                "/",
                "",
                *(f"{k}:{v}" for k, v in canonical),
                "",
                signed,
                hashlib.sha256(body).hexdigest(),
            ]
        )
        scope = f"{day}/{self.region}/{self.service}/aws4_request"
        to_sign = "\n".join(
            [ALGORITHM, date, scope, hashlib.sha256(request.encode("utf-8")).hexdigest()]
        )
        signature = hmac.new(
            self._signing_key(creds.secret_key, day), to_sign.encode("utf-8"), hashlib.sha256
        ).hexdigest()
        headers["Authorization"] = (
            f"{ALGORITHM} Credential={creds.access_key}/{scope}, "
            f"SignedHeaders={signed}, Signature={signature}"
        )
