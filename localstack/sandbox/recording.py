"""What the sandbox remembers: every provider request it received (`SandboxState.record`)
and the faults injected for the next ones (`Fault`), shared by the server's handler threads.

Faults (`POST /sandbox/faults`, a JSON object or a list of them):
    provider     twilio | sendgrid | slack | teams; omitted = every provider
    status       HTTP status to answer instead of handling the request
    code         Twilio error code for the body (default 20429 for 429, 20500 for 5xx)
    body         answer this text instead of the provider-shaped error body (with any
                 status, 200 included: e.g. a Teams connector's 200 "...HTTP error 429")
    retry_after  seconds, sent as Retry-After
    latency_ms   delay before answering (alone: a slow but successful request)
    count        apply to the next N matching requests, then drop the fault
    rate         apply to this fraction of matching requests (0..1; default 1)
    seed         seed the fault's random generator so a rate is reproducible
Faults are checked in the order they were added; the first one that fires applies.
"""

from __future__ import annotations

import copy
import random
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

PROVIDERS = ("twilio", "sendgrid", "slack", "teams")
FILES_KEPT_BYTES = 64 * 1024 * 1024  # attachments' bytes kept, newest first


@dataclass
class Fault:
    """One injected failure or delay; see the module docstring for the fields."""

    provider: str | None = None
    status: int | None = None
    code: int | None = None
    retry_after: float | None = None
    latency_ms: float = 0.0
    body: str | None = None
    count: int | None = None
    rate: float | None = None
    seed: int | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    fired: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        if self.provider is not None and self.provider not in PROVIDERS:
            raise ValueError(f"provider must be one of {PROVIDERS}")
        if self.status is None and not self.latency_ms:
            raise ValueError("a fault needs a status or a latency_ms")
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError("status must be an HTTP status")
        if self.count is not None and self.count < 1:
            raise ValueError("count must be at least 1")
        if self.rate is not None and not 0.0 <= self.rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        if self.latency_ms < 0:
            raise ValueError("latency_ms must not be negative")
        self._rng = random.Random(self.seed)

    @classmethod
    def from_spec(cls, spec: Any) -> Fault:
        if not isinstance(spec, dict):
            raise ValueError("a fault is a JSON object")
        unknown = set(spec) - set(FAULT_FIELDS)
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        try:
            return cls(**spec)
        except TypeError as exc:
            raise ValueError(str(exc)) from exc

    def public(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in (*FAULT_FIELDS, "id", "fired")}


FAULT_FIELDS = (
    "provider",
    "status",
    "code",
    "retry_after",
    "latency_ms",
    "body",
    "count",
    "rate",
    "seed",
)


class SandboxState:
    """Recorded requests and active faults, shared by the server's handler threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[dict[str, Any]] = []
        self._faults: list[Fault] = []
        # A request's seq -> its attachments as (MIME type, bytes).
        self._files: dict[int, list[tuple[str, bytes]]] = {}
        self._seq = 0
        self.stopping = threading.Event()

    def record(self, entry: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._seq += 1
            entry["seq"] = self._seq
            self._records.append(entry)
        return entry

    def keep_files(self, seq: int, files: list[tuple[str, bytes]]) -> None:
        """Keep a request's attachments; the oldest are forgotten past FILES_KEPT_BYTES."""
        with self._lock:
            self._files[seq] = files
            total = sum(len(f) for kept in self._files.values() for _, f in kept)
            for oldest in sorted(self._files):
                if total <= FILES_KEPT_BYTES or oldest == seq:
                    break
                total -= sum(len(f) for _, f in self._files.pop(oldest))

    def file(self, seq: int, index: int) -> tuple[str, bytes] | None:
        """A kept attachment of request `seq`: (MIME type, bytes)."""
        with self._lock:
            files = self._files.get(seq) or []
            return files[index] if 0 <= index < len(files) else None

    def update(self, entry: dict[str, Any], **values: Any) -> None:
        with self._lock:
            entry.update(values)

    def messages(
        self, provider: str | None = None, notification_id: str | None = None
    ) -> list[dict[str, Any]]:
        with self._lock:
            return [
                copy.deepcopy(r)
                for r in self._records
                if (provider is None or r["provider"] == provider)
                and (notification_id is None or r["notification_id"] == notification_id)
            ]

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
            self._files.clear()

    def add_fault(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def faults(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.public() for f in self._faults]

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def pick_fault(self, provider: str) -> Fault | None:
        """The first fault that fires for this request; counts down and drops spent ones."""
        with self._lock:
            for fault in self._faults:
                if fault.provider not in (None, provider):
                    continue
                if fault.rate is not None and fault._rng.random() >= fault.rate:
                    continue
                fault.fired += 1
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count == 0:
                        self._faults.remove(fault)
                return copy.copy(fault)
        return None
