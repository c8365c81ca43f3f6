"""What the sandbox answers a request with: status, body, content type, extra headers and
the provider's message id (recorded with the request)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    message_id: str | None = None

    @classmethod
    def json(cls, status: int, data: Any, **kwargs: Any) -> Reply:
        return cls(status, json.dumps(data).encode(), **kwargs)

    @classmethod
    def text(cls, status: int, text: str) -> Reply:
        return cls(status, text.encode(), content_type="text/plain; charset=utf-8")
