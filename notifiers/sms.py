"""SMS through Twilio Messaging."""

from __future__ import annotations

from core.catalogue.models import DeliveryResult, NotificationMessage
from core.platform.errors import PermanentError
from notifiers.twilio_client import TwilioMessaging


class SmsNotifier:
    """Sends `content["text"]` to the first address (E.164), from the configured number or,
    when set, a Messaging Service (Twilio then picks the sender and handles compliance)."""

    channel = "sms"

    def __init__(
        self, twilio: TwilioMessaging, *, from_number: str, messaging_service_sid: str | None
    ) -> None:
        self._twilio = twilio
        self._from = from_number
        self._service = messaging_service_sid

    def send(self, notification: NotificationMessage) -> DeliveryResult:
        body = notification.content.get("text", "")
        if not body:
            raise PermanentError("sms content has no text", code="content")
        return self._twilio.send(
            to=notification.addresses[0],
            body=body,
            notification_id=notification.notification_id,
            from_=None if self._service else self._from,
            messaging_service_sid=self._service,
        )
