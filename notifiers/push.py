"""Mobile push through SNS platform endpoints (APNs, FCM), one `Publish` per device.

Several devices, several outcomes. The rule, chosen so a retry never pushes twice to a
device that already has the notification:

- at least one device took it: success. `PushResult` lists the message id per endpoint,
  the endpoints that are gone (disabled or deleted: the worker may drop them) and those that
  failed transiently (not retried: a retry would repeat the push on the devices that got it);
- no device took it and any failure was transient: `RetryableError` (nothing was delivered,
  so a retry duplicates nothing);
- every device failed permanently: `PermanentError`, with `address_invalid=True` when every
  endpoint is gone.
"""

from __future__ import annotations

import json
from typing import Any

from botocore import exceptions as boto
from pydantic import Field

from core.catalogue.event_types import Priority
from core.catalogue.models import DeliveryResult, NotificationMessage
from core.platform.errors import DeliveryError, PermanentError, RetryableError

PROVIDER = "sns"

#: SNS says the device can never receive again: the token was unregistered (EndpointDisabled)
#: or the endpoint was deleted (NotFound).
GONE_CODES = frozenset({"EndpointDisabled", "NotFound"})
RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "KMSThrottling",
        "RequestLimitExceeded",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "KMSUnavailable",
    }
)


class PushResult(DeliveryResult):
    """A `DeliveryResult` with the outcome per endpoint (see the module docstring)."""

    message_ids: dict[str, str] = Field(default_factory=dict)
    gone_endpoints: list[str] = Field(default_factory=list)
    failed_endpoints: dict[str, str] = Field(default_factory=dict)


def payload(notification: NotificationMessage) -> str:
    """The `MessageStructure="json"` message: one body per platform, from {title, body}.

    FCM gets the legacy `notification` + `data` shape (SNS maps it to FCM HTTP v1); APNs gets
    an `aps.alert`. The ids ride in the data so the app can report opens.
    """
    title = notification.content.get("title", "")
    body = notification.content.get("body", "")
    data = {
        "notification_id": notification.notification_id,
        "event_id": notification.event_id,
        "event_type": notification.event_type,
    }
    urgent = notification.priority in (Priority.critical, Priority.high)
    gcm: dict[str, Any] = {
        "notification": {"title": title, "body": body},
        "data": data,
        "priority": "high" if urgent else "normal",
    }
    aps: dict[str, Any] = {"alert": {"title": title, "body": body}, "sound": "default"}
    if notification.priority is Priority.critical:
        aps["interruption-level"] = "time-sensitive"
    apns = json.dumps({"aps": aps, **data})
    return json.dumps(
        {"default": body or title, "GCM": json.dumps(gcm), "APNS": apns, "APNS_SANDBOX": apns}
    )


class PushNotifier:
    """Publishes to every endpoint ARN in the addresses with the given boto3 SNS client."""

    channel = "push"

    def __init__(self, sns: Any) -> None:
        self._sns = sns

    def send(self, notification: NotificationMessage) -> DeliveryResult:
        message = payload(notification)
        result = PushResult(provider=PROVIDER)
        errors: dict[str, DeliveryError] = {}
        for arn in notification.addresses:
            try:
                resp = self._sns.publish(TargetArn=arn, MessageStructure="json", Message=message)
            except Exception as exc:
                errors[arn] = _translate(exc, arn)
                continue
            result.message_ids[arn] = str(resp["MessageId"])

        for arn, error in errors.items():
            if isinstance(error, PermanentError) and error.address_invalid:
                result.gone_endpoints.append(arn)
            else:
                result.failed_endpoints[arn] = str(error)
        if result.message_ids:
            result.provider_message_id = next(iter(result.message_ids.values()))
            return result
        retryable = [e for e in errors.values() if isinstance(e, RetryableError)]
        if retryable:
            hints = [e.retry_after for e in retryable if e.retry_after is not None]
            first = retryable[0]
            raise RetryableError(
                _summary(errors), code=first.code, retry_after=max(hints) if hints else None
            )
        first_error = next(iter(errors.values()))
        raise PermanentError(
            _summary(errors),
            code=first_error.code,
            address_invalid=len(result.gone_endpoints) == len(errors),
        )


def _summary(errors: dict[str, DeliveryError]) -> str:
    return "; ".join(f"{arn}: {error}" for arn, error in errors.items())


def _translate(exc: Exception, arn: str) -> DeliveryError:
    """The one place boto3 / SNS exceptions become delivery errors."""
    if isinstance(exc, boto.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        reason = f"sns {code}: {error.get('Message', '')}"
        if code in GONE_CODES:
            return PermanentError(reason, code=f"sns:{code}", address_invalid=True)
        if code in RETRYABLE_CODES or status == 429 or status >= 500:
            return RetryableError(reason, code=f"sns:{code}")
        return PermanentError(reason, code=f"sns:{code}")
    if isinstance(exc, boto.ConnectionError | boto.HTTPClientError):
        # Connect / read timeouts, refused connections, dropped connections.
        return RetryableError(f"sns unreachable: {exc}", code="sns:connection")
    if isinstance(exc, boto.BotoCoreError):
        # Parameter validation, missing credentials: this process's configuration, not SNS.
        return PermanentError(f"sns call for {arn} not made: {exc}", code="sns:client")
    return PermanentError(f"sns: unexpected {type(exc).__name__}: {exc}", code="sns")
