"""What the routes need, built once per app and handed out by dependencies."""

from __future__ import annotations

from dataclasses import dataclass

from api.auth import Authenticator
from api.intake import EventIntake
from core.api_keys import ApiKeyStore
from core.aws import AwsClients
from core.event_store import EventStore
from core.settings import Settings
from core.users import UserStore


@dataclass
class Services:
    settings: Settings
    clients: AwsClients
    events: EventStore
    intake: EventIntake
    users: UserStore
    auth: Authenticator

    @classmethod
    def build(cls, settings: Settings, clients: AwsClients) -> Services:
        events = EventStore(clients.dynamodb, clients.names.table, settings.event_retention_days)
        return cls(
            settings=settings,
            clients=clients,
            events=events,
            intake=EventIntake(
                events, clients.sns, clients.topic_arn, settings.accept_deadline_seconds
            ),
            users=UserStore(clients.dynamodb, clients.names.table),
            auth=Authenticator(
                ApiKeyStore(clients.dynamodb, clients.names.table),
                rate=settings.api_key_rate_per_second,
                burst=settings.api_key_burst,
                enabled=settings.auth_enabled,
            ),
        )
