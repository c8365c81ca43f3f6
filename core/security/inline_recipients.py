"""Inline recipients within a key's limits: the countries it may text, and how many
recipients a day it may address (SMS pumping).

Inline `to` recipients let an `events:write` key reach any number it names, and a stolen
or careless key would otherwise be limited only by its request rate: tens of thousands of
premium-rate texts a day. Two rules, checked before the event is accepted:

- **Prefixes.** An SMS or WhatsApp number must start with one of the deployment's E.164
  prefixes (`HERALD_INLINE_SMS_PREFIXES`; empty: any) and, if the key has its own
  (`herald keys create --inline-prefixes +1,+44`), one of those too: a key can only narrow
  the deployment. Refused: 403 naming the rule and the field (`to.sms.0`).
- **Daily quota.** Each key addresses at most `HERALD_INLINE_DAILY_QUOTA` inline
  recipients (distinct addresses of the event, every channel) per UTC day, or its own
  quota. Refused: 429 naming the quota.

The quota is counted in DynamoDB, one counter per key and UTC day (`INLINE#<key id>` /
`DAY#<yyyy-mm-dd>`), in a transaction with a charge marker for the event
(`CHARGE#<event id>`, made only if absent): the counter's `ADD` holds only while
`count + n <= quota`, so concurrent API processes can never pass it together. The marker
makes a charge happen once per event, whatever is retried:

- a throttled or conflicting transaction applied nothing and is tried again;
- a 500 or a lost answer may have applied it: the retry then finds the marker and is
  refused on it, which reads as "already counted" (so it is neither counted twice nor let
  through uncounted);
- a client's retry of the same POST (the same `Idempotency-Key` or `event_id`, hence the
  same event id) finds the marker too, today or after midnight (the marker outlives the
  day by two), and is not counted again;
- when AWS stays unavailable the request fails (503): an event is never accepted
  uncounted.

A POST without an idempotency key or event id gets a new id each time, so a client that
retries it is charged again, as it would be sending a second event.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from core.aws import dynamo
from core.aws import errors as aws_errors
from core.aws.clients import AwsClients
from core.catalogue.models import utcnow
from core.platform.settings_inline import InlineRecipientSettings, parse_prefixes

PHONE_CHANNELS = ("sms", "whatsapp")
# The day's counter and the charges outlive the day, so that a retry just after midnight
# still finds its charge.
KEEP_DAYS = 2
ATTEMPTS = 6


class InlineLimitExceeded(Exception):
    """A rule refused the request: `status` (403 or 429) and a message naming the rule."""

    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = {"Retry-After": str(retry_after)} if retry_after else None


@dataclass(frozen=True)
class InlineRules:
    """The limits one request is held to: the deployment's prefixes, the key's (None: the
    key has none of its own) and the key's daily quota (0: none)."""

    deployment_prefixes: tuple[str, ...]
    key_prefixes: tuple[str, ...] | None
    daily_quota: int


def rules_for(
    deployment_prefixes: tuple[str, ...],
    default_quota: int,
    key_prefixes: Sequence[str] | None,
    key_quota: int | None,
) -> InlineRules:
    return InlineRules(
        deployment_prefixes,
        tuple(key_prefixes) if key_prefixes else None,
        default_quota if key_quota is None else key_quota,
    )


def prefix_problem(to: Mapping[str, Sequence[str]], rules: InlineRules) -> str | None:
    """The first number outside the prefixes, as `to.<channel>.<n>: why` (the number itself
    is not repeated back: it is personal data, and the caller knows it)."""
    for channel in PHONE_CHANNELS:
        for index, number in enumerate(to.get(channel, ())):
            field = f"to.{channel}.{index}"
            allowed = rules.deployment_prefixes
            if allowed and not number.startswith(allowed):
                return (
                    f"{field}: the number is outside the prefixes this deployment allows "
                    f"inline (HERALD_INLINE_SMS_PREFIXES: {', '.join(allowed)})"
                )
            own = rules.key_prefixes
            if own is not None and not number.startswith(own):
                return (
                    f"{field}: the number is outside this API key's inline prefixes "
                    f"({', '.join(own)})"
                )
    return None


def recipients_of(to: Mapping[str, Sequence[str]]) -> int:
    """Distinct addresses, as the router makes them recipients (a repeat is one)."""
    return sum(len(set(addresses)) for addresses in to.values())


class InlineQuota:
    """The per-key daily counter of inline recipients (see the module docstring)."""

    def __init__(
        self,
        dynamodb: Any,
        table: str,
        clock: Callable[[], datetime] = utcnow,
        attempts: int = ATTEMPTS,
    ) -> None:
        self._db = dynamodb
        self._table = table
        self._clock = clock
        self._attempts = attempts

    def charge(self, key_id: str, event_id: str, recipients: int, quota: int) -> None:
        """Count `recipients` for event `event_id` on key `key_id`'s day, once; raises
        InlineLimitExceeded (429) past `quota`, and the AWS error when DynamoDB stays
        unavailable (nothing was let through uncounted)."""
        if quota <= 0 or recipients <= 0:
            return
        day = self._clock().astimezone(UTC)
        if recipients > quota:
            raise InlineLimitExceeded(429, _over(quota, recipients, None))  # never fits
        expires = int(
            (
                datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1 + KEEP_DAYS)
            ).timestamp()
        )
        pk = {"S": f"INLINE#{key_id}"}
        charge = {
            "Put": {
                "TableName": self._table,
                "Item": {
                    dynamo.PK: pk,
                    dynamo.SK: {"S": f"CHARGE#{_charge_id(event_id)}"},
                    "recipients": {"N": str(recipients)},
                    "day": {"S": day.date().isoformat()},
                    "expires_at": {"N": str(expires)},
                },
                "ConditionExpression": "attribute_not_exists(PK)",
            }
        }
        count = {
            "Update": {
                "TableName": self._table,
                "Key": {dynamo.PK: pk, dynamo.SK: {"S": f"DAY#{day.date().isoformat()}"}},
                "UpdateExpression": "ADD #c :n SET expires_at = :exp",
                "ConditionExpression": "attribute_not_exists(#c) OR #c <= :room",
                "ExpressionAttributeNames": {"#c": "recipients"},
                "ExpressionAttributeValues": {
                    ":n": {"N": str(recipients)},
                    ":room": {"N": str(quota - recipients)},
                    ":exp": {"N": str(expires)},
                },
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }
        try:
            aws_errors.retry(
                lambda: self._db.transact_write_items(TransactItems=[charge, count]),
                attempts=self._attempts,
            )
        except Exception as exc:
            refused = aws_errors.refused_items(exc)
            if 0 in refused:
                return  # this event was counted already (a retry, or an answer lost)
            if 1 in refused:
                used = refused[1].get("recipients", {}).get("N")
                midnight = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
                raise InlineLimitExceeded(
                    429,
                    _over(quota, recipients, int(used) if used else None),
                    max(1, int((midnight - day).total_seconds())),
                ) from None
            raise


def _charge_id(event_id: str) -> str:
    """Event ids are up to a few hundred characters of the client's; a digest keeps the
    sort key small and reveals nothing."""
    return hashlib.sha256(event_id.encode()).hexdigest()[:32]


def _over(quota: int, asked: int, used: int | None) -> str:
    today = f"{used} used today, " if used is not None else ""
    return (
        f"to: this API key's daily quota of {quota} inline recipients is reached "
        f"({today}{asked} in this event); it starts again at 00:00 UTC"
    )


class InlineLimits:
    """Both rules for one deployment: `check` before an event with inline recipients is
    accepted."""

    def __init__(
        self, deployment_prefixes: tuple[str, ...], default_quota: int, quota: InlineQuota
    ) -> None:
        self._prefixes = deployment_prefixes
        self._default_quota = default_quota
        self._quota = quota

    def check(
        self,
        to: Mapping[str, Sequence[str]],
        event_id: str,
        key_id: str | None,
        key_prefixes: Sequence[str] | None = None,
        key_quota: int | None = None,
    ) -> None:
        """Raises InlineLimitExceeded (403: a prefix, 429: the quota). Without a key (auth
        switched off) only the deployment's prefixes apply: there is nobody to count."""
        rules = rules_for(self._prefixes, self._default_quota, key_prefixes, key_quota)
        problem = prefix_problem(to, rules)
        if problem is not None:
            raise InlineLimitExceeded(403, problem)
        if key_id is not None:
            self._quota.charge(key_id, event_id, recipients_of(to), rules.daily_quota)


def check_for_key(
    limits: InlineLimits, to: Mapping[str, Sequence[str]], event_id: str, key: Any | None
) -> None:
    """`limits.check` for the request's API key (an `ApiKey`, or None with auth off)."""
    if key is None:
        limits.check(to, event_id, None)
        return
    limits.check(to, event_id, key.key_id, key.inline_prefixes, key.inline_daily_quota)


def build_limits(settings: InlineRecipientSettings, clients: AwsClients) -> InlineLimits:
    """The deployment's limits over the stack table's counters (cheap: no state of its
    own, so built per request)."""
    return InlineLimits(
        parse_prefixes(settings.inline_sms_prefixes),
        settings.inline_daily_quota,
        InlineQuota(clients.dynamodb, clients.names.table),
    )
