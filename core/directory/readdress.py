"""A redriven notification goes to the recipient's current address.

A message in a dead-letter queue carries the addresses of the moment it was routed. When
the address was the problem (a wrong phone number, since fixed on the user), replaying it
as it is fails again, or reaches the old number. So a redrive looks the user up again and
sends to what the profile says now; the record's history names both (masked), so the
original stays on file.
"""

from __future__ import annotations

from core.catalogue.models import NotificationMessage
from core.directory.preferences import addresses_for
from core.directory.users import UserStore
from core.platform.masking import mask_address


def readdress(
    users: UserStore, message: NotificationMessage
) -> tuple[NotificationMessage, str | None]:
    """The message with the recipient's current addresses, and a note when they changed.
    Unchanged when the recipient has no profile (inline recipients, a deleted user) or no
    address on this channel any more: the send then fails again with its own reason."""
    profile = users.get(message.recipient_id)
    if profile is None:
        return message, None
    current, _ = addresses_for(message.channel, profile)
    if not current or list(current) == message.addresses:
        return message, None
    note = "address changed since routing: now {} (was {})".format(
        ", ".join(mask_address(a) for a in current),
        ", ".join(mask_address(a) for a in message.addresses),
    )
    return message.model_copy(update={"addresses": list(current)}), note
