"""What each Herald service runs and touches: the one place the least-privilege IAM, the
environment and the scaling of the compute stack come from (plain data; no CDK).

A service names the queues it consumes (receive, delete, change visibility), the queues it
sends to, the queues whose depth it reads, whether it publishes to the events topic, and
the secrets it gets. Nothing else is granted: the SMS worker's role names the two SMS queues
and their DLQs, never an email queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from core.catalogue.event_types import CHANNELS
from core.resources.declaration import Resources

Scaling = Literal["backlog", "api", "fixed"]

#: The secrets (one Secrets Manager secret each, `<prefix>/<name>`) and their JSON keys.
SECRETS: dict[str, tuple[str, ...]] = {
    "twilio": ("account_sid", "auth_token"),
    "sendgrid": ("api_key",),
    "datasources": (),  # the whole string: HERALD_DATASOURCES' JSON
}
#: environment variable -> (secret, JSON key). Only the processes that talk to a provider
#: read its secret: the API (it verifies Twilio's receipts), the SMS and WhatsApp workers
#: (Twilio), the email worker (SendGrid), the evaluator and the listener (the data sources).
TWILIO = {
    "HERALD_TWILIO_ACCOUNT_SID": ("twilio", "account_sid"),
    "HERALD_TWILIO_AUTH_TOKEN": ("twilio", "auth_token"),
}
SENDGRID = {"HERALD_SENDGRID_API_KEY": ("sendgrid", "api_key")}
DATASOURCES = {"HERALD_DATASOURCES": ("datasources", "")}


@dataclass(frozen=True)
class Service:
    name: str
    command: tuple[str, ...]
    consumes: tuple[str, ...] = ()
    sends_to: tuple[str, ...] = ()
    reads_depth_of: tuple[str, ...] = ()
    publishes: bool = False
    push_endpoints: Literal["", "register", "publish"] = ""
    secrets: tuple[tuple[str, tuple[str, str]], ...] = ()
    scaling: Scaling = "fixed"
    lambda_handler: str | None = None
    """The handler when `compute=lambda` deploys this service as a function."""
    channel: str | None = None

    @property
    def touched_queues(self) -> set[str]:
        return set(self.consumes) | set(self.sends_to) | set(self.reads_depth_of)


def services(resources: Resources) -> list[Service]:
    names = resources.names
    router_queues = tuple(q.name for q in resources.role_queues("router"))
    channel_queues = tuple(q.name for q in resources.role_queues("channel"))
    rules_queues = tuple(q.name for q in resources.role_queues("rules"))
    every_queue = tuple(q.name for q in resources.queues)
    work_queues = tuple(q.name for q in resources.work_queues)
    dead_letter_queues = tuple(q.name for q in resources.dead_letter_queues)

    def dlqs(queues: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(names.dlq_of(q) for q in queues)

    found = [
        # The API records and publishes events, reads GET /stats' depths, and peeks at and
        # replays dead letters (receive and delete on a DLQ, send to its source queue).
        Service(
            "api",
            # Host and port from the image's environment (HERALD_API_HOST, _PORT).
            (
                "sh",
                "-c",
                "exec python -m uvicorn api.main:create_app --factory "
                '--host "$HERALD_API_HOST" --port "$HERALD_API_PORT" --no-access-log',
            ),
            consumes=dead_letter_queues,
            sends_to=work_queues,
            reads_depth_of=every_queue,
            publishes=True,
            push_endpoints="register",
            # The auth token verifies Twilio's receipts; the data sources let it check a SQL
            # rule's data source when it is written and run POST /rules/{id}/test.
            secrets=tuple({**TWILIO, **DATASOURCES}.items()),
            scaling="api",
        ),
        # The router consumes its two queues, dead-letters to their DLQs, sends to every
        # channel queue and continues a fan-out on its own queues; it paces a fan-out on
        # the channel queues' depth.
        Service(
            "router",
            ("python", "-m", "listeners.router"),
            consumes=router_queues,
            sends_to=channel_queues + router_queues + dlqs(router_queues),
            reads_depth_of=channel_queues,
            scaling="backlog",
            lambda_handler="listeners.lambda_entry.router",
        ),
        Service(
            "scheduler",
            ("python", "-m", "alerting.scheduler"),
            sends_to=rules_queues,
        ),
        # The due sender reads and writes due work and the records it releases in the
        # table, sends released notifications to the channel queues and publishes delayed
        # events when due.
        Service(
            "due-sender",
            ("python", "-m", "listeners.due_sender"),
            sends_to=channel_queues,
            publishes=True,
        ),
        Service(
            "evaluator",
            ("python", "-m", "alerting.evaluator"),
            consumes=rules_queues,
            sends_to=dlqs(rules_queues),
            publishes=True,
            secrets=tuple(DATASOURCES.items()),
            scaling="backlog",
        ),
        # The listener reads the rules and its data sources' leases in the table, LISTENs on
        # the data sources (their secret) and sends NOTIFY-triggered runs to the rules queues.
        Service(
            "listener",
            ("python", "-m", "alerting.listener"),
            sends_to=rules_queues,
            secrets=tuple(DATASOURCES.items()),
        ),
        # The reconciler republishes, re-enqueues stranded notifications and waits while
        # the queue a message would join has a backlog.
        Service(
            "reconciler",
            ("python", "-m", "listeners.reconciler"),
            sends_to=router_queues + channel_queues,
            reads_depth_of=router_queues + channel_queues,
            publishes=True,
        ),
    ]
    for channel in CHANNELS:
        own = tuple(q.name for q in resources.channel_queues(channel))
        secrets = {"sms": TWILIO, "whatsapp": TWILIO, "email": SENDGRID}.get(channel, {})
        found.append(
            Service(
                f"worker-{channel}",
                ("python", "-m", "listeners.worker", "--channel", channel),
                consumes=own,
                sends_to=dlqs(own),
                push_endpoints="publish" if channel == "push" else "",
                secrets=tuple(secrets.items()),
                scaling="backlog",
                lambda_handler="listeners.lambda_entry.worker",
                channel=channel,
            )
        )
    return found
