"""The lean path's SigV4 signature is botocore's, byte for byte: real AWS accepts nothing
else, and the emulator does not check signatures."""

from __future__ import annotations

import json

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import NoCredentialsError

from core.aws.wire.signing import SigV4Signer


@pytest.mark.parametrize("token", [None, "session-token/with+odd=chars"])
@pytest.mark.parametrize(
    ("url", "host", "service", "target"),
    [
        (
            "https://dynamodb.eu-west-1.amazonaws.com/",
            "dynamodb.eu-west-1.amazonaws.com",
            "dynamodb",
            "DynamoDB_20120810.UpdateItem",
        ),
        ("http://127.0.0.1:4566/", "127.0.0.1:4566", "sqs", "AmazonSQS.ReceiveMessage"),
    ],
)
def test_the_signature_is_botocores(
    token: str | None, url: str, host: str, service: str, target: str
) -> None:
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    body = json.dumps({"TableName": "t", "Key": {"PK": {"S": "ü  two  spaces"}}}).encode()
    headers = {
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": target,
        "x-amzn-query-mode": "true",
    }
    theirs = AWSRequest(method="POST", url=url, data=body, headers=dict(headers))
    SigV4Auth(credentials, service, "eu-west-1").add_auth(theirs)

    ours = dict(headers)
    SigV4Signer(service, "eu-west-1", lambda: credentials).sign(
        host, ours, body, date=theirs.headers["X-Amz-Date"]
    )
    assert ours["Authorization"] == theirs.headers["Authorization"]
    assert ours.get("X-Amz-Security-Token") == theirs.headers.get("X-Amz-Security-Token")


def test_refreshed_credentials_are_used_on_the_next_call() -> None:
    keys = [Credentials("AKID1", "secret-1"), Credentials("AKID2", "secret-2")]
    signer = SigV4Signer("dynamodb", "us-east-1", lambda: keys[0])
    first: dict[str, str] = {}
    signer.sign("h", first, b"{}", date="20261207T120000Z")
    keys.pop(0)
    second: dict[str, str] = {}
    signer.sign("h", second, b"{}", date="20261207T120000Z")
    assert "Credential=AKID1/" in first["Authorization"]
    assert "Credential=AKID2/" in second["Authorization"]
    assert (
        first["Authorization"].split("Signature=")[1]
        != second["Authorization"].split("Signature=")[1]
    )


def test_no_credentials_is_botocores_error() -> None:
    with pytest.raises(NoCredentialsError):
        SigV4Signer("sqs", "us-east-1", lambda: None).sign("h", {}, b"{}")
