"""One settings object for every process, read from the environment and `.env`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.platform.setting_values import (
    DEFAULT_CHAT_WEBHOOK_HOSTS,
    SANDBOX_TWILIO_ACCOUNT_SID,
    SANDBOX_TWILIO_AUTH_TOKEN,
    IpNetwork,
    parse_hosts,
    parse_networks,
)
from core.platform.settings_alerting import AlertingSettings
from core.platform.settings_digests import DigestSettings
from core.platform.settings_fanout import FanoutPacingSettings
from core.platform.settings_inline import InlineRecipientSettings
from core.platform.settings_listen import ListenSettings
from core.platform.settings_providers import ProviderSettings
from core.platform.settings_scale import ScaleSettings
from core.platform.settings_timing import TimingSettings
from core.platform.settings_trickle import TrickleSettings

__all__ = [
    "DEFAULT_CHAT_WEBHOOK_HOSTS",
    "SANDBOX_TWILIO_ACCOUNT_SID",
    "SANDBOX_TWILIO_AUTH_TOKEN",
    "IpNetwork",
    "Settings",
    "parse_hosts",
    "parse_networks",
]


class Settings(
    ProviderSettings,
    AlertingSettings,
    ListenSettings,
    TimingSettings,
    ScaleSettings,
    InlineRecipientSettings,
    DigestSettings,
    FanoutPacingSettings,
    TrickleSettings,
    BaseSettings,
):
    """Every tunable of Herald. Field names map to `HERALD_<NAME>` environment variables.

    AWS settings keep the names boto3 itself uses (`AWS_ENDPOINT_URL`, `AWS_DEFAULT_REGION`)
    so a shell configured for the AWS CLI configures Herald too.
    """

    model_config = SettingsConfigDict(
        env_prefix="HERALD_", env_file=".env", extra="ignore", populate_by_name=True
    )

    # --- AWS -------------------------------------------------------------------------------
    aws_endpoint_url: str | None = Field(
        default=None,
        validation_alias="AWS_ENDPOINT_URL",
        description="AWS endpoint (moto, LocalStack); unset means real AWS.",
    )
    aws_endpoint_url_dynamodb: str | None = Field(
        default=None,
        validation_alias="AWS_ENDPOINT_URL_DYNAMODB",
        description="DynamoDB's own endpoint, when it is not AWS_ENDPOINT_URL's "
        "(DynamoDB Local, a second emulator process); unset means AWS_ENDPOINT_URL.",
    )
    aws_region: str = Field(
        default="us-east-1", validation_alias="AWS_DEFAULT_REGION", description="AWS region."
    )
    aws_access_key_id: str | None = Field(
        default=None,
        validation_alias="AWS_ACCESS_KEY_ID",
        description="Unset: boto3's usual chain (profile, role).",
    )
    aws_secret_access_key: str | None = Field(
        default=None,
        validation_alias="AWS_SECRET_ACCESS_KEY",
        repr=False,
        description="Goes with AWS_ACCESS_KEY_ID.",
    )
    resource_prefix: str = Field(
        default="herald",
        pattern=r"^[a-z][a-z0-9-]{0,30}$",
        description="Prefix of every AWS resource name, so stacks can share an account.",
    )
    aws_max_pool_connections: int = Field(
        default=50, ge=1, description="HTTP connections per AWS client (threads share them)."
    )
    aws_timeout_seconds: float = Field(
        default=3.0,
        gt=0,
        description="Longest wait to connect to AWS or for one call's answer (SQS long polls "
        "add their wait); past it the call fails, so the API answers 503 instead of hanging.",
    )
    aws_max_attempts: int = Field(
        default=2, ge=1, description="Tries per AWS call, the first included (standard retry mode)."
    )
    aws_wire: Literal["lean", "botocore"] = Field(
        default="lean",
        description="How DynamoDB's, SQS's and SNS's data-plane calls are made: `lean` signs "
        "and sends them directly (a third to an eighth of botocore's CPU per call, botocore's "
        "retry rules and errors); `botocore` sends every call through botocore.",
    )
    aws_call_log: str | None = Field(
        default=None,
        description="Count AWS calls per service and operation into `<this>.<pid>.json` "
        "every few seconds and at exit (benchmarks); unset means off.",
    )

    # --- observability ---------------------------------------------------------------------
    queue_depth_interval_seconds: float = Field(
        default=15.0,
        gt=0,
        description="How often the queue-depth collector reads every queue's depth.",
    )
    queue_depth_idle_max_seconds: float = Field(
        default=300.0,
        gt=0,
        description="Longest pause of the queue-depth collector while every queue is empty "
        "(it doubles from the interval; a message anywhere brings it back).",
    )
    queue_peek_oldest: bool = Field(
        default=True,
        description="The collector peeks (visibility 0) at a queue with waiting messages for "
        "its oldest message's age; a peek counts as a receive of that message.",
    )
    otlp_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP traces endpoint (e.g. http://127.0.0.1:4318/v1/traces); "
        "unset means spans are made for propagation only and exported nowhere.",
    )

    # --- API -------------------------------------------------------------------------------
    api_host: str = Field(default="127.0.0.1", description="Address the API binds.")
    api_port: int = Field(default=8000, description="Port the API listens on.")
    public_base_url: str | None = Field(
        default=None,
        description="The API's URL as providers see it (behind a proxy); signed webhooks are "
        "verified against it. Unset means the URL of the request as received.",
    )
    auth_enabled: bool = Field(
        default=True, description="Require an API key on every route but /, /docs and /health."
    )
    bootstrap_api_key: str | None = Field(
        default=None,
        repr=False,
        description="Provisioning creates this key with every scope (development; `make run` "
        "sets and prints one).",
    )
    api_key_rate_per_second: float = Field(
        default=200.0, gt=0, description="Requests per second each API key may make (429 past it)."
    )
    api_key_burst: float = Field(default=400.0, gt=0, description="Burst allowance per API key.")
    accept_deadline_seconds: float = Field(
        default=5.0,
        gt=0,
        description="Longest a POST /events waits for AWS before answering 503 (the event may "
        "still be recorded: retry with the same Idempotency-Key).",
    )
    api_key_cache_seconds: float = Field(
        default=30.0,
        ge=0,
        description="How long an API process trusts a verified key (and remembers a refused "
        "one) without reading it again: a key revoked elsewhere still works this long on "
        "other processes; the process that revokes it (DELETE /keys/{key_id}) drops it at once.",
    )
    auth_failure_rate_per_second: float = Field(
        default=1.0,
        gt=0,
        description="Failed authentications per second each client address may make; past "
        "the burst, keys it sends that are not already verified are 429 without a lookup.",
    )
    auth_failure_burst: float = Field(
        default=20.0, ge=1, description="Burst of failed authentications per client address."
    )
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated CIDRs (or addresses) of the load balancers and proxies "
        "in front of the API. Only a request whose peer is one of them has its "
        "X-Forwarded-For read, from the right past every trusted hop, for the client address "
        "that failed authentications are counted by; empty trusts no header.",
    )
    health_cache_seconds: float = Field(
        default=10.0,
        ge=0,
        description="GET /health answers from a check at most this old, so the open route "
        "costs DynamoDB and SNS one call each per this period, whatever the traffic.",
    )
    max_body_bytes: int = Field(default=256 * 1024, description="Larger request bodies get 413.")
    max_batch_events: int = Field(
        default=100, ge=1, le=1000, description="Most events in one POST /events/batch."
    )
    event_retention_days: int = Field(
        default=30, ge=1, description="Events and notifications expire (DynamoDB TTL) after this."
    )

    # --- reconciler ------------------------------------------------------------------------
    reconcile_grace_seconds: float = Field(
        default=60.0,
        description="An event still START this long after its last publish is republished.",
    )
    reconcile_interval_seconds: float = Field(
        default=10.0, description="Pause between reconciler passes."
    )

    reconcile_max_publishes: int = Field(
        default=5,
        ge=1,
        description="Publishes of an event that no router took before it is FAILED with why.",
    )
    reconcile_max_repairs: int = Field(
        default=5,
        ge=1,
        description="Repairs (re-routing stranded notifications or an unfinished fan-out) of an "
        "event before its stranded notifications are FAILED and the event settled.",
    )
    reconcile_stranded_seconds: float = Field(
        default=420.0,
        gt=0,
        description="A QUEUED or RETRYING notification untouched this long, or a SENDING one "
        "whose lease lapsed this long ago, has lost its message: it is re-enqueued. Above the "
        "longest retry wait.",
    )
    reconcile_pages_per_pass: int = Field(
        default=10,
        ge=1,
        description="Index pages the reconciler reads per pass (START and PROCESSING events "
        "together); it resumes where it stopped, so stuck events never hide newer ones.",
    )

    # --- listeners -------------------------------------------------------------------------
    wait_time_seconds: int = Field(default=10, ge=0, le=20, description="SQS long-poll wait.")
    visibility_timeout_seconds: int = Field(
        default=30, ge=1, description="Queue visibility timeout, and a send's claim lease."
    )
    normal_share: float = Field(
        default=0.2,
        ge=0.0,
        le=1.0,
        description="Fraction of receives reserved for the normal queue while critical is busy.",
    )
    fanout_page_size: int = Field(
        default=1000, ge=1, description="Subscribers resolved per router message before continuing."
    )
    fanout_max_waiting: int = Field(
        default=5000,
        ge=0,
        description="A topic's next fan-out page waits while its lane's channel queues hold this "
        "many messages waiting, so that a large fan-out goes out as fast as workers take it, "
        "not ahead of every other event of the lane (0: never waits).",
    )
    fanout_pace_seconds: int = Field(
        default=15,
        ge=0,
        le=900,
        description="How long a waiting fan-out page is delayed before it looks again.",
    )
    max_topic_subscribers: int = Field(
        default=100_000,
        ge=1,
        description="Most subscribers one topic may have: its fan-out size. Subscribing one "
        "more is a 409.",
    )
    retry_base_seconds: float = Field(
        default=2.0, gt=0, description="First retry waits up to this (full jitter)."
    )
    retry_cap_seconds: float = Field(default=300.0, gt=0, description="Longest retry wait.")
    retry_after_max_seconds: float | None = Field(
        default=None,
        gt=0,
        description="Longest provider Retry-After a notification waits out (default: "
        "HERALD_RETRY_CAP_SECONDS). A longer one fails the notification at once with the "
        "reason and dead-letters it (redrive it later) rather than sending before the "
        "provider allows. With the visibility timeout it must stay under "
        "HERALD_RECONCILE_STRANDED_SECONDS, so that a retry never looks stranded.",
    )
    max_attempts: int = Field(
        default=5, ge=1, description="Sends before a notification is FAILED and dead-lettered."
    )
    max_receives: int = Field(
        default=50,
        ge=3,
        description="The work queues' RedrivePolicy maxReceiveCount: a backstop far above the "
        "attempt budget (attempts are counted on the record; consumers settle a message "
        "themselves two receives before this, so SQS never moves one behind a record's back).",
    )
    outcome_deadline_seconds: float = Field(
        default=300.0,
        gt=0,
        description="How long a worker keeps trying to record a send's outcome (keeping the "
        "message invisible and the claim alive) before letting the message come back.",
    )

    @property
    def receive_budget(self) -> int:
        """Receives after which a consumer settles a message itself (see max_receives)."""
        return self.max_receives - 2

    send_concurrency: int = Field(
        default=10, ge=1, description="Concurrent provider calls per worker process."
    )

    @property
    def retry_after_ceiling(self) -> float:
        """The longest Retry-After waited out (`retry_after_max_seconds`, else the cap)."""
        return self.retry_after_max_seconds or self.retry_cap_seconds

    @model_validator(mode="after")
    def retries_end_before_they_look_stranded(self) -> Settings:
        """The reconciler takes a RETRYING notification untouched for
        `reconcile_stranded_seconds` for one whose message was lost, and re-enqueues it: a
        retry that waits longer would be sent by the duplicate before its time, and after
        the last repair failed with its message still pending. So every wait, with the
        visibility timeout after it, ends before that."""
        longest = max(self.retry_cap_seconds, self.retry_after_ceiling)
        if longest + self.visibility_timeout_seconds >= self.reconcile_stranded_seconds:
            raise ValueError(
                "HERALD_RECONCILE_STRANDED_SECONDS must exceed the longest retry wait "
                "(HERALD_RETRY_CAP_SECONDS, HERALD_RETRY_AFTER_MAX_SECONDS) plus "
                f"HERALD_VISIBILITY_TIMEOUT_SECONDS: {self.reconcile_stranded_seconds:g} <= "
                f"{longest:g} + {self.visibility_timeout_seconds}"
            )
        return self

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, value: str) -> str:
        parse_networks(value)  # a ValueError names the bad entry
        return value

    @property
    def trusted_proxy_networks(self) -> tuple[IpNetwork, ...]:
        return parse_networks(self.trusted_proxies)
