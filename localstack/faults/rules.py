"""Which requests fail, and how: fault rules and the seeded choice among them."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SERVICES = ("dynamodb", "sqs", "sns")

DYNAMODB_SINGLE_WRITES: frozenset[str] = frozenset({"PutItem", "UpdateItem", "DeleteItem"})
DYNAMODB_WRITES: frozenset[str] = DYNAMODB_SINGLE_WRITES | {"TransactWriteItems", "BatchWriteItem"}
SQS_BATCHES: frozenset[str] = frozenset(
    {"SendMessageBatch", "DeleteMessageBatch", "ChangeMessageVisibilityBatch"}
)
SQS_BATCH_WRITES: frozenset[str] = SQS_BATCHES | {"SendMessage"}
SNS_PUBLISHES: frozenset[str] = frozenset({"Publish", "PublishBatch"})

# Kinds that only make sense for some operations: a rule of such a kind skips every other
# operation (its rate is not spent on them).
_ONLY: dict[str, dict[str, frozenset[str]]] = {
    "conflict": {"dynamodb": DYNAMODB_SINGLE_WRITES},
    "transaction_conflict": {"dynamodb": frozenset({"TransactWriteItems"})},
    "transaction_throttled": {"dynamodb": frozenset({"TransactWriteItems"})},
    "partial_batch": {
        "sqs": SQS_BATCHES,
        "sns": frozenset({"PublishBatch"}),
        "dynamodb": frozenset({"BatchWriteItem"}),
    },
}
KINDS = ("throttle", "unavailable", "internal_after", "timeout_after", *_ONLY)
RULE_FIELDS = ("service", "kind", "rate", "operations", "hold_seconds")


@dataclass(frozen=True)
class FaultRule:
    """A share (`rate`) of the requests for `operations` of `service` (all of them when
    empty) gets the fault `kind`. Rules that match one request add their rates up: a single
    draw picks at most one of them, so three rules of 0.05 fail 15% of the requests."""

    service: str
    kind: str
    rate: float
    operations: frozenset[str] = frozenset()
    hold_seconds: float = 5.0

    def __post_init__(self) -> None:
        if not isinstance(self.operations, frozenset):
            object.__setattr__(self, "operations", frozenset(self.operations))
        if self.service not in SERVICES:
            raise ValueError(f"service: must be one of {', '.join(SERVICES)}")
        if self.kind not in KINDS:
            raise ValueError(f"kind: must be one of {', '.join(KINDS)}")
        only = _ONLY.get(self.kind)
        if only is not None:
            if self.service not in only:
                raise ValueError(f"kind: {self.kind} applies to {', '.join(sorted(only))} only")
            if self.operations and not self.operations & only[self.service]:
                names = ", ".join(sorted(only[self.service]))
                raise ValueError(f"operations: {self.kind} applies to {names} only")
        if isinstance(self.rate, bool) or not isinstance(self.rate, int | float):
            raise ValueError("rate: must be a number")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError("rate: must be between 0 and 1")
        if not all(isinstance(op, str) and op for op in self.operations):
            raise ValueError("operations: must be operation names")
        if isinstance(self.hold_seconds, bool) or not isinstance(self.hold_seconds, int | float):
            raise ValueError("hold_seconds: must be a number")
        if self.hold_seconds < 0:
            raise ValueError("hold_seconds: must not be negative")

    def applies_to(self, service: str, operation: str) -> bool:
        if service != self.service or (self.operations and operation not in self.operations):
            return False
        only = _ONLY.get(self.kind)
        return only is None or operation in only[service]

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "kind": self.kind,
            "rate": self.rate,
            "operations": sorted(self.operations),
            "hold_seconds": self.hold_seconds,
        }

    @classmethod
    def from_dict(cls, spec: Any) -> FaultRule:
        """A rule from its JSON form; a ValueError names the field that is wrong."""
        if not isinstance(spec, Mapping):
            raise ValueError("must be a JSON object")
        unknown = sorted(set(spec) - set(RULE_FIELDS))
        if unknown:
            raise ValueError(f"{unknown[0]}: unknown field (fields: {', '.join(RULE_FIELDS)})")
        for name in ("service", "kind", "rate"):
            if name not in spec:
                raise ValueError(f"{name}: required")
        operations = spec.get("operations") or []
        if isinstance(operations, str) or not isinstance(operations, list | tuple):
            raise ValueError("operations: must be a list of operation names")
        return cls(
            service=spec["service"],
            kind=spec["kind"],
            rate=spec["rate"],
            operations=frozenset(operations),
            hold_seconds=spec.get("hold_seconds", 5.0),
        )


def rules_from_json(data: Any) -> list[FaultRule]:
    """Rules from `{"rules": [...]}` or a bare list; errors name `rules[i].<field>`."""
    if isinstance(data, Mapping):
        unknown = sorted(set(data) - {"rules"})
        if unknown:
            raise ValueError(f"{unknown[0]}: unknown field (fields: rules)")
        if "rules" not in data:
            raise ValueError("rules: required")
        data = data["rules"]
    if not isinstance(data, list):
        raise ValueError("rules: must be a list of rules")
    rules = []
    for index, spec in enumerate(data):
        try:
            rules.append(FaultRule.from_dict(spec))
        except ValueError as exc:
            raise ValueError(f"rules[{index}].{exc}") from None
    return rules


def _spread(
    service: str, shares: Iterable[tuple[str, float, frozenset[str]]], rate: float, hold: float
) -> list[FaultRule]:
    return [
        FaultRule(service, kind, round(rate * share, 6), operations, hold)
        for kind, share, operations in shares
    ]


def aws_under_load(rate: float = 0.15, *, hold_seconds: float = 5.0) -> list[FaultRule]:
    """A mix of the faults below across DynamoDB writes, SQS batch writes and SNS publishes,
    totalling about `rate` of each (the chaos scenario uses it).

    Every operation named gets `rate` in all: throttling is the commonest fault, then
    answers lost after the write applied (500, timeout), then refusals a retry cures
    (conflicts, 503) and partly failed batches."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError("rate: must be between 0 and 1")
    single = DYNAMODB_SINGLE_WRITES
    transact = frozenset({"TransactWriteItems"})
    batch = frozenset({"BatchWriteItem"})
    common = (
        ("throttle", 0.4, frozenset[str]()),
        ("internal_after", 0.2, frozenset[str]()),
        ("timeout_after", 0.1, frozenset[str]()),
        ("unavailable", 0.1, frozenset[str]()),
    )
    dynamodb = _spread(
        "dynamodb",
        (
            *((kind, share, DYNAMODB_WRITES) for kind, share, _ in common),
            ("conflict", 0.2, single),
            ("transaction_conflict", 0.15, transact),
            ("transaction_throttled", 0.05, transact),
            ("partial_batch", 0.2, batch),
        ),
        rate,
        hold_seconds,
    )
    sqs = _spread(
        "sqs",
        (
            *((kind, share, SQS_BATCH_WRITES) for kind, share, _ in common),
            ("partial_batch", 0.2, SQS_BATCHES),
            ("throttle", 0.2, frozenset({"SendMessage"})),
        ),
        rate,
        hold_seconds,
    )
    sns = _spread(
        "sns",
        (
            *((kind, share, SNS_PUBLISHES) for kind, share, _ in common),
            ("partial_batch", 0.2, frozenset({"PublishBatch"})),
            ("throttle", 0.2, frozenset({"Publish"})),
        ),
        rate,
        hold_seconds,
    )
    return [rule for rule in (*dynamodb, *sqs, *sns) if rule.rate > 0]


class RuleBook:
    """The active rules, the seeded generator that decides, and what was injected; shared
    by the proxy's request threads."""

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._rules: tuple[FaultRule, ...] = ()
        self._rng = random.Random(seed)
        self._stats: Counter[str] = Counter()

    def set(self, rules: Sequence[FaultRule]) -> None:
        for rule in rules:
            if not isinstance(rule, FaultRule):
                raise TypeError(f"not a FaultRule: {rule!r}")
        with self._lock:
            self._rules = tuple(rules)

    def rules(self) -> tuple[FaultRule, ...]:
        with self._lock:
            return self._rules

    def pick(self, service: str, operation: str) -> tuple[FaultRule, random.Random] | None:
        """The rule that fires for this request, if any, and a generator for the fault's
        own choices (which item conflicts, which entries fail), seeded from the book's so
        a run with the same seed and the same requests injects the same faults."""
        with self._lock:
            matching = [r for r in self._rules if r.rate > 0 and r.applies_to(service, operation)]
            if not matching:
                return None
            draw = self._rng.random()
            own = random.Random(self._rng.getrandbits(64))
        total = 0.0
        for rule in matching:
            total += rule.rate
            if draw < total:
                return rule, own
        return None

    def count(self, kind: str, operation: str) -> None:
        with self._lock:
            self._stats[f"{kind}:{operation}"] += 1

    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self._stats.items()))
