"""What the routes need, built once per app and handed out by dependencies."""

from __future__ import annotations

from dataclasses import dataclass

from alerting.alerts import AlertStore
from alerting.rule_store import RuleStore
from alerting.silences import SilenceStore
from alerting.sources import DataSources
from api.auth import Authenticator
from api.intake import EventIntake
from api.readiness import Readiness
from core.aws.clients import AwsClients
from core.directory.devices import DeviceRegistry
from core.directory.listing import Directory
from core.directory.users import UserStore
from core.ledger.event_reads import EventReads
from core.ledger.shard_layout import ShardLayout
from core.ledger.wiring import Ledger, build_ledger
from core.platform.settings import Settings
from core.security.api_keys import ApiKeyStore


@dataclass
class Services:
    settings: Settings
    clients: AwsClients
    ledger: Ledger
    events: EventReads
    intake: EventIntake
    users: UserStore
    directory: Directory
    devices: DeviceRegistry
    auth: Authenticator
    alerts: AlertStore
    silences: SilenceStore
    rules: RuleStore
    datasources: DataSources
    readiness: Readiness

    @classmethod
    def build(cls, settings: Settings, clients: AwsClients) -> Services:
        # The Twilio webhook verifies receipts with the auth token: refuse the public
        # sandbox one outside sandbox mode, before serving a request.
        settings.real_twilio_credentials()
        ledger = build_ledger(
            clients.dynamodb,
            clients.names.table,
            settings.event_retention_days,
            ShardLayout.of(settings),
        )
        return cls(
            settings=settings,
            clients=clients,
            ledger=ledger,
            events=ledger.event_reads,
            intake=EventIntake(
                ledger.event_writes,
                clients.sns,
                clients.topic_arn,
                settings.accept_deadline_seconds,
                settings.accept_linger_seconds,
            ),
            users=UserStore(clients.dynamodb, clients.names.table),
            directory=Directory(clients.dynamodb, clients.names.table),
            devices=DeviceRegistry(clients.sns, clients.names.prefix),
            auth=Authenticator(
                ApiKeyStore(clients.dynamodb, clients.names.table),
                rate=settings.api_key_rate_per_second,
                burst=settings.api_key_burst,
                enabled=settings.auth_enabled,
                cache_seconds=settings.api_key_cache_seconds,
                failure_rate=settings.auth_failure_rate_per_second,
                failure_burst=settings.auth_failure_burst,
                trusted_proxies=settings.trusted_proxy_networks,
            ),
            alerts=AlertStore(clients.dynamodb, clients.names.table, settings.event_retention_days),
            silences=SilenceStore(clients.dynamodb, clients.names.table),
            rules=RuleStore(clients.dynamodb, clients.names.table, settings.scheduler_shards),
            datasources=DataSources(settings, clients.client("secretsmanager")),
            readiness=Readiness(clients, settings.health_cache_seconds),
        )
