"""Mobile push through SNS platform endpoints on the session's moto server (no boto3 mocking).

moto keeps what a platform endpoint was sent in the endpoint's `messages`; in server mode
the `/moto-api/data.json` route lists every tracked model instance, so the published
payload is read from there. Push needs only SNS, so these tests skip the full provisioning
of the `stack` fixture and give every endpoint a fresh token instead of resetting the emulator.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from core.aws.clients import AwsClients
from core.platform.errors import PermanentError, RetryableError
from core.platform.settings import Settings
from notifiers.push import PushNotifier, PushResult
from tests.notifiers.conftest import MakeMessage


@dataclass
class Sns:
    endpoint: str
    clients: AwsClients
    settings: Settings


@pytest.fixture
def aws(settings: Settings) -> Sns:
    """SNS on the session's moto server (see the module docstring)."""
    return Sns(str(settings.aws_endpoint_url), AwsClients(settings), settings)


def create_endpoint(aws: Sns, token: str, platform: str = "GCM") -> str:
    sns = aws.clients.sns
    app = sns.create_platform_application(
        Name=f"herald-{platform.lower()}",
        Platform=platform,
        Attributes={"PlatformCredential": "server-key"},
    )
    endpoint = sns.create_platform_endpoint(
        PlatformApplicationArn=app["PlatformApplicationArn"], Token=f"{token}-{uuid.uuid4()}"
    )
    return str(endpoint["EndpointArn"])


def disable(aws: Sns, arn: str) -> None:
    aws.clients.sns.set_endpoint_attributes(EndpointArn=arn, Attributes={"Enabled": "false"})


def sent_to(aws: Sns, arn: str) -> dict[str, str]:
    """What moto recorded as published to one platform endpoint: message id -> message."""
    with urllib.request.urlopen(f"{aws.endpoint}/moto-api/data.json", timeout=10) as resp:
        data: dict[str, Any] = json.load(resp)
    for endpoint in data["sns"]["PlatformEndpoint"]:
        if endpoint["arn"] == arn:
            return dict(endpoint["messages"])
    raise AssertionError(f"moto does not know {arn}")


def test_publish_to_an_endpoint_returns_its_message_id_and_sends_per_platform_payloads(
    aws: Sns, make_message: MakeMessage
) -> None:
    arn = create_endpoint(aws, "device-token-1")
    message = make_message("push", addresses=[arn], priority="critical")
    result = PushNotifier(aws.clients.sns).send(message)

    assert isinstance(result, PushResult)
    assert result.provider == "sns"
    sent = sent_to(aws, arn)
    assert list(sent) == [result.provider_message_id]
    assert result.message_ids == {arn: result.provider_message_id}
    assert result.gone_endpoints == []

    structure = json.loads(sent[str(result.provider_message_id)])
    assert structure["default"] == "Ana follows you"
    gcm = json.loads(structure["GCM"])
    assert gcm["notification"] == {"title": "New follower", "body": "Ana follows you"}
    assert gcm["data"]["notification_id"] == message.notification_id
    assert gcm["priority"] == "high"
    apns = json.loads(structure["APNS"])
    assert apns["aps"]["alert"] == {"title": "New follower", "body": "Ana follows you"}
    assert apns["aps"]["interruption-level"] == "time-sensitive"
    assert apns["notification_id"] == message.notification_id
    assert structure["APNS_SANDBOX"] == structure["APNS"]


def test_disabled_endpoint_is_permanent_and_marks_the_address(
    aws: Sns, make_message: MakeMessage
) -> None:
    arn = create_endpoint(aws, "device-token-2")
    disable(aws, arn)
    with pytest.raises(PermanentError) as caught:
        PushNotifier(aws.clients.sns).send(make_message("push", addresses=[arn]))
    assert caught.value.code == "sns:EndpointDisabled"
    assert caught.value.address_invalid
    assert sent_to(aws, arn) == {}


def test_deleted_endpoint_is_permanent_and_marks_the_address(
    aws: Sns, make_message: MakeMessage
) -> None:
    arn = create_endpoint(aws, "device-token-3")
    aws.clients.sns.delete_endpoint(EndpointArn=arn)
    with pytest.raises(PermanentError) as caught:
        PushNotifier(aws.clients.sns).send(make_message("push", addresses=[arn]))
    assert caught.value.code == "sns:NotFound"
    assert caught.value.address_invalid


def test_some_devices_delivered_is_a_success_that_reports_the_disabled_ones(
    aws: Sns, make_message: MakeMessage
) -> None:
    live = create_endpoint(aws, "device-live")
    dead = create_endpoint(aws, "device-dead")
    disable(aws, dead)
    result = PushNotifier(aws.clients.sns).send(make_message("push", addresses=[dead, live]))

    assert isinstance(result, PushResult)
    assert result.gone_endpoints == [dead]
    assert list(result.message_ids) == [live]
    assert result.provider_message_id == result.message_ids[live]
    assert list(sent_to(aws, live)) == [result.provider_message_id]


def test_unreachable_sns_is_retryable(
    aws: Sns, refused_url: str, make_message: MakeMessage
) -> None:
    settings = aws.settings.model_copy(update={"aws_endpoint_url": refused_url})
    sns = AwsClients(settings).sns
    arn = "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/herald-gcm/0000"
    with pytest.raises(RetryableError) as caught:
        PushNotifier(sns).send(make_message("push", addresses=[arn]))
    assert caught.value.code == "sns:connection"
