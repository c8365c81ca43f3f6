"""AWS as it fails under load, between Herald's real boto3 clients and the emulator.

    python -m localstack.faults --upstream http://127.0.0.1:4566 [--port 4567]
        [--seed N] [--rules FILE|JSON] [--under-load RATE]

The emulator (moto) never throttles, conflicts, times out or answers 500 after applying a
write; real AWS does all of these. `FaultProxy` is an HTTP proxy on loopback: every request
goes on to the emulator unchanged unless a `FaultRule` picks it, and a picked one is
answered the way AWS answers, in AWS's wire format, so botocore raises the same
`ClientError` code (and retries what it would retry) as it does against AWS. See
docs/faults.md for the kinds, their wire formats and the control endpoint
(`GET|PUT|DELETE /_faults` on the proxy).
"""

from localstack.faults.proxy import CONTROL_PATH, FaultProxy
from localstack.faults.rules import (
    DYNAMODB_WRITES,
    KINDS,
    SERVICES,
    SNS_PUBLISHES,
    SQS_BATCH_WRITES,
    FaultRule,
    aws_under_load,
    rules_from_json,
)

__all__ = [
    "CONTROL_PATH",
    "DYNAMODB_WRITES",
    "KINDS",
    "SERVICES",
    "SNS_PUBLISHES",
    "SQS_BATCH_WRITES",
    "FaultProxy",
    "FaultRule",
    "aws_under_load",
    "rules_from_json",
]
