"""The providers' settings (Twilio, SendGrid, chat webhooks, the sandbox): one field group of
`Settings`, kept apart so the settings module stays one screen per idea."""

from __future__ import annotations

from pydantic import BaseModel, Field

from core.platform.setting_values import (
    DEFAULT_CHAT_WEBHOOK_HOSTS,
    SANDBOX_TWILIO_ACCOUNT_SID,
    SANDBOX_TWILIO_AUTH_TOKEN,
    parse_hosts,
)


class ProviderSettings(BaseModel):
    """Fields of `Settings` (`HERALD_<NAME>`); base URLs are settings so the real SDKs can
    be pointed at the local sandbox."""

    # Base URLs are settings so the real SDKs can be pointed at the local sandbox.
    twilio_account_sid: str = Field(
        default=SANDBOX_TWILIO_ACCOUNT_SID,
        description="Twilio account SID; outside sandbox mode the sandbox value is refused.",
    )
    twilio_auth_token: str = Field(
        default=SANDBOX_TWILIO_AUTH_TOKEN,
        repr=False,
        description="Twilio auth token; also verifies status callbacks. Outside sandbox mode "
        "the sandbox value is refused: no process that uses Twilio starts with it.",
    )
    twilio_from_number: str = Field(default="+15005550006", description="SMS sender number.")
    twilio_whatsapp_from: str = Field(default="+14155238886", description="WhatsApp sender number.")
    twilio_messaging_service_sid: str | None = Field(
        default=None, description="Send through a Messaging Service instead of a number."
    )
    twilio_base_url: str | None = Field(
        default=None, description="Twilio API base URL; unset means api.twilio.com."
    )
    twilio_status_callback_url: str | None = Field(
        default=None,
        description="Public URL Twilio posts delivery receipts to; each message's callback "
        "carries `?notification_id=`.",
    )
    sendgrid_api_key: str = Field(default="SG.sandbox", repr=False, description="SendGrid API key.")
    sendgrid_host: str | None = Field(
        default=None, description="SendGrid API host; unset means api.sendgrid.com."
    )
    sendgrid_webhook_public_key: str | None = Field(
        default=None, description="Base64 public key that signs SendGrid event webhooks."
    )
    email_from: str = Field(
        default="notifications@herald.example", description="Sender of every email."
    )
    email_reply_to: str | None = Field(default=None, description="Reply-To of every email.")
    chat_webhook_base_url: str | None = Field(
        default=None,
        description="Post chat webhooks to `{this}/{slack|teams}/{host}{path}` instead of "
        "their own origin (a proxy or the sandbox; trusted, so it may be a private address); "
        "unset means the webhook URL itself, through a transport that refuses non-public "
        "addresses.",
    )
    chat_webhook_hosts: str = Field(
        default=DEFAULT_CHAT_WEBHOOK_HOSTS,
        description="Comma-separated hosts a user's chat webhook URL may name (`*.` for any "
        "subdomain); https only. Add self-hosted chat here.",
    )
    provider_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Timeout of one provider HTTP call."
    )
    provider_rate_per_second: float = Field(
        default=100.0, gt=0, description="Token-bucket rate per provider per worker process."
    )
    sandbox: bool = Field(
        default=True, description="Start the local fake providers (make run) when true."
    )
    sandbox_port: int = Field(default=8025, description="Port of the provider sandbox.")

    def real_twilio_credentials(self) -> tuple[str, str]:
        """The Twilio account SID and auth token, refusing the sandbox's public ones outside
        sandbox mode: that token would let anybody forge delivery receipts (the webhook
        verifies signatures with it). Checked where Twilio is used (the SMS and WhatsApp
        workers, the API's receipt webhook), so a process that never talks to Twilio needs
        no Twilio secret."""
        if not self.sandbox:
            if self.twilio_auth_token == SANDBOX_TWILIO_AUTH_TOKEN:
                raise ValueError(
                    "HERALD_TWILIO_AUTH_TOKEN: set the real Twilio auth token (the sandbox "
                    "value is public), or HERALD_SANDBOX=true for local runs"
                )
            if self.twilio_account_sid == SANDBOX_TWILIO_ACCOUNT_SID:
                raise ValueError(
                    "HERALD_TWILIO_ACCOUNT_SID: set the real Twilio account SID, or "
                    "HERALD_SANDBOX=true for local runs"
                )
        return self.twilio_account_sid, self.twilio_auth_token

    @property
    def chat_webhook_host_patterns(self) -> tuple[str, ...]:
        return parse_hosts(self.chat_webhook_hosts)
