"""compute=lambda keeps credentials out of the function's environment: the entry point reads
them from Secrets Manager (here the emulator's) before the settings are read."""

from __future__ import annotations

import json

import boto3

from listeners.lambda_entry import load_secrets
from tests.conftest import Stack


def test_secrets_named_by_the_environment_are_read_once_into_it(stack: Stack) -> None:
    client = boto3.client(
        "secretsmanager",
        endpoint_url=stack.settings.aws_endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    arn = client.create_secret(
        Name="herald-test/twilio",
        SecretString=json.dumps({"account_sid": "AC123", "auth_token": "token-1"}),
    )["ARN"]
    environ = {
        "HERALD_SECRET_ENV": json.dumps(
            {
                "HERALD_TWILIO_ACCOUNT_SID": [arn, "account_sid"],
                "HERALD_TWILIO_AUTH_TOKEN": [arn, "auth_token"],
                "HERALD_DATASOURCES": [arn, ""],
            }
        ),
        "HERALD_TWILIO_ACCOUNT_SID": "ACalready",  # a variable already set stays
    }
    load_secrets(environ, client)
    assert environ["HERALD_TWILIO_ACCOUNT_SID"] == "ACalready"
    assert environ["HERALD_TWILIO_AUTH_TOKEN"] == "token-1"
    assert json.loads(environ["HERALD_DATASOURCES"])["auth_token"] == "token-1"
