"""WhatsApp through Twilio Messaging: the SMS call with `whatsapp:` addresses."""

from __future__ import annotations

from core.catalogue.models import DeliveryResult, NotificationMessage
from core.platform.errors import PermanentError
from notifiers.twilio_client import TwilioMessaging

PREFIX = "whatsapp:"


def whatsapp_address(number: str) -> str:
    """Twilio routes to WhatsApp by the `whatsapp:` scheme on both the sender and recipient."""
    return number if number.startswith(PREFIX) else f"{PREFIX}{number}"


class WhatsAppNotifier:
    """Sends `content["text"]` to the first address from the WhatsApp sender number."""

    channel = "whatsapp"

    def __init__(self, twilio: TwilioMessaging, *, from_number: str) -> None:
        self._twilio = twilio
        self._from = whatsapp_address(from_number)

    def send(self, notification: NotificationMessage) -> DeliveryResult:
        body = notification.content.get("text", "")
        if not body:
            raise PermanentError("whatsapp content has no text", code="content")
        return self._twilio.send(
            to=whatsapp_address(notification.addresses[0]),
            body=body,
            notification_id=notification.notification_id,
            from_=self._from,
        )
