"""AWS Lambda entry points for the deployment's `compute=lambda` (deploy/): SQS triggers
with ReportBatchItemFailures on the router queues (`router`) and on one channel's queues
(`worker`, the channel named by `HERALD_WORKER_CHANNEL`).

Secrets stay out of the function's environment: `HERALD_SECRET_ENV` maps each setting's
variable to a Secrets Manager secret and JSON key (`{"HERALD_TWILIO_AUTH_TOKEN": [arn,
"twilio_auth_token"]}`, an empty key for the whole string), read once per container
before the settings are.
"""

from __future__ import annotations

import json
import os
from typing import Any

import boto3

from core.aws.clients import AwsClients
from core.platform.settings import Settings
from listeners import router as router_process
from listeners.lambda_handler import LambdaHandler, sqs_lambda_handler
from listeners.settle_checks import SettleChecks
from listeners.worker import build_worker

# One per container, reused by its invocations (the handler and the checks it owes).
_worker: tuple[LambdaHandler, SettleChecks] | None = None


def load_secrets(environ: Any = os.environ, client: Any = None) -> None:
    """Put each secret `HERALD_SECRET_ENV` names into `environ` (once: a set one stays)."""
    wanted = json.loads(environ.get("HERALD_SECRET_ENV") or "{}")
    cache: dict[str, str] = {}
    for variable, (secret_id, key) in wanted.items():
        if variable in environ:
            continue
        if secret_id not in cache:
            client = client or boto3.client("secretsmanager")
            cache[secret_id] = client.get_secret_value(SecretId=secret_id)["SecretString"]
        environ[variable] = json.loads(cache[secret_id])[key] if key else cache[secret_id]


def router(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    load_secrets()
    return router_process.lambda_handler(event, context)


def worker(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """One invocation. The settling checks a topic's event is owed (at most one a second
    per worker, `listeners.settle_checks`) run before it returns: a frozen container runs
    nothing until its next invocation, and may be reaped before it."""
    global _worker
    if _worker is None:
        load_secrets()
        settings = Settings()
        channel = os.environ["HERALD_WORKER_CHANNEL"]
        _, delivery, _ = build_worker(settings, AwsClients(settings), channel)
        handler = sqs_lambda_handler(
            delivery, settings.retry_base_seconds, settings.retry_cap_seconds
        )
        _worker = (handler, delivery.settle_checks)
    handler, owed = _worker
    try:
        return handler(event, context)
    finally:
        owed.flush()
