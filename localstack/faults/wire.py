"""AWS's wire formats, as far as the fault layer needs them: which call a request is, the
error answers each service gives under load, and batches that partly fail.

Protocols, as boto3 1.44 speaks them:
    DynamoDB  JSON 1.0, `X-Amz-Target: DynamoDB_20120810.<Operation>`
    SQS       JSON 1.0, `X-Amz-Target: AmazonSQS.<Operation>`; errors carry
              `x-amzn-query-error: <query code>;Sender|Receiver`, from which botocore takes
              the error code (the service is query-compatible)
    SNS       query: a form body with `Action=<Operation>`; XML answers and `ErrorResponse`s
"""

from __future__ import annotations

import json
import random
import re
import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import Message
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl, urlencode
from xml.sax.saxutils import escape

DYNAMODB_TYPE = "com.amazonaws.dynamodb.v20120810#"
SQS_TYPE = "com.amazonaws.sqs#"
SNS_XMLNS = "http://sns.amazonaws.com/doc/2010-03-31/"
JSON_1_0 = "application/x-amz-json-1.0"

_SCOPE = re.compile(r"Credential=[^/,\s]+/[^/]+/[^/]+/([^/]+)/aws4_request")
_SNS_ENTRY = re.compile(r"^PublishBatchRequestEntries\.member\.(\d+)\.(.+)$")

INTERNAL_MESSAGE = "We encountered an internal error. Please try again."
CONFLICT_MESSAGE = "Transaction is ongoing for the item"
# DynamoDB's words for a throttled on-demand table or index.
CAPACITY_MESSAGE = (
    "Throughput exceeds the current capacity of your table or index. DynamoDB is "
    "automatically scaling your table or index so please try again shortly. If exceptions "
    "persist, check if you have a hot key: "
    "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html"
)
PROVISIONED_MESSAGE = (
    "The level of configured provisioned throughput for the table was exceeded. Consider "
    "increasing your provisioning level with the UpdateTable API."
)


@dataclass
class Reply:
    """An HTTP answer, whole."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)

    def with_body(self, body: bytes) -> Reply:
        """This answer with another body (a DynamoDB checksum follows it)."""
        headers = [(k, v) for k, v in self.headers if k.lower() != "x-amz-crc32"]
        if self.header("x-amz-crc32") is not None:
            headers.append(("x-amz-crc32", str(zlib.crc32(body) & 0xFFFFFFFF)))
        return Reply(self.status, headers, body)


@dataclass(frozen=True)
class AwsCall:
    """One request to an AWS service, as the proxy recognises it."""

    service: str
    operation: str
    body: bytes

    def json(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.body or b"{}")
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def form(self) -> list[tuple[str, str]]:
        return parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True)


def identify(method: str, headers: Message | Mapping[str, str], body: bytes) -> AwsCall | None:
    """The AWS call a request makes, or None for anything else (moto's own /moto-api/,
    GETs, services this layer does not fault)."""
    if method != "POST":
        return None
    target = headers.get("X-Amz-Target")
    if target:
        prefix, _, operation = target.partition(".")
        if prefix.startswith("DynamoDB_"):
            return AwsCall("dynamodb", operation, body)
        if prefix == "AmazonSQS":
            return AwsCall("sqs", operation, body)
        return None
    if "x-www-form-urlencoded" not in headers.get("Content-Type", ""):
        return None
    scope = _SCOPE.search(headers.get("Authorization", ""))
    if scope is None or scope.group(1) != "sns":
        return None
    action = dict(parse_qsl(body.decode("utf-8", "replace"))).get("Action")
    return AwsCall("sns", action, body) if action else None


# --- error answers ---------------------------------------------------------------------------


def _request_id() -> str:
    return str(uuid.uuid4())


def dynamodb_error(
    status: int,
    code: str,
    message: str,
    *,
    namespace: str = DYNAMODB_TYPE,
    reasons: list[dict[str, str]] | None = None,
) -> Reply:
    """`{"__type": "<namespace><code>", "message": ...}`, as DynamoDB answers; a
    cancellation spells it `Message` and carries its `CancellationReasons`."""
    data: dict[str, Any] = {"__type": namespace + code}
    if reasons is None:
        data["message"] = message
    else:
        data["CancellationReasons"] = reasons
        data["Message"] = message
    body = json.dumps(data).encode()
    headers = [
        ("Content-Type", JSON_1_0),
        ("x-amzn-RequestId", _request_id()),
        ("x-amz-crc32", str(zlib.crc32(body) & 0xFFFFFFFF)),
        ("Date", formatdate(usegmt=True)),
    ]
    return Reply(status, headers, body)


def sqs_error(status: int, code: str, message: str, *, sender: bool) -> Reply:
    """SQS's JSON error: the shape in `__type`, the query code in `x-amzn-query-error`."""
    body = json.dumps({"__type": SQS_TYPE + code, "message": message}).encode()
    headers = [
        ("Content-Type", JSON_1_0),
        ("x-amzn-RequestId", _request_id()),
        ("x-amzn-query-error", f"{code};{'Sender' if sender else 'Receiver'}"),
        ("Date", formatdate(usegmt=True)),
    ]
    return Reply(status, headers, body)


def sns_error(status: int, code: str, message: str, *, sender: bool) -> Reply:
    """The query protocol's `ErrorResponse`."""
    body = (
        f'<ErrorResponse xmlns="{SNS_XMLNS}"><Error>'
        f"<Type>{'Sender' if sender else 'Receiver'}</Type><Code>{code}</Code>"
        f"<Message>{escape(message)}</Message></Error>"
        f"<RequestId>{_request_id()}</RequestId></ErrorResponse>"
    ).encode()
    headers = [
        ("Content-Type", "text/xml"),
        ("x-amzn-RequestId", _request_id()),
        ("Date", formatdate(usegmt=True)),
    ]
    return Reply(status, headers, body)


def throttled(call: AwsCall, rng: random.Random) -> Reply:
    if call.service == "dynamodb":
        if rng.random() < 0.5:
            code = "ProvisionedThroughputExceededException"
            return dynamodb_error(400, code, PROVISIONED_MESSAGE)
        return dynamodb_error(
            400,
            "ThrottlingException",
            CAPACITY_MESSAGE,
            namespace="com.amazon.coral.availability#",
        )
    if call.service == "sqs":
        return sqs_error(400, "RequestThrottled", "Request is throttled.", sender=True)
    return sns_error(400, "Throttling", "Rate exceeded", sender=True)


def internal_error(call: AwsCall) -> Reply:
    if call.service == "dynamodb":
        return dynamodb_error(500, "InternalServerError", "Internal server error")
    if call.service == "sqs":
        return sqs_error(500, "InternalError", INTERNAL_MESSAGE, sender=False)
    return sns_error(500, "InternalError", INTERNAL_MESSAGE, sender=False)


def unavailable(call: AwsCall) -> Reply:
    message = "Service is unable to handle request."
    if call.service == "dynamodb":
        return dynamodb_error(503, "ServiceUnavailable", message)
    if call.service == "sqs":
        return sqs_error(503, "ServiceUnavailable", message, sender=False)
    return sns_error(503, "ServiceUnavailable", message, sender=False)


def write_conflict() -> Reply:
    """A single write to an item a transaction holds."""
    return dynamodb_error(400, "TransactionConflictException", CONFLICT_MESSAGE)


def transaction_cancelled(call: AwsCall, rng: random.Random, code: str) -> Reply | None:
    """A TransactWriteItems cancelled for one of its items (`code` is TransactionConflict or
    ThrottlingError), a `None` reason for each of the others; None for a body that names
    no items (the service will say what is wrong with it)."""
    items = (call.json() or {}).get("TransactItems")
    if not isinstance(items, list) or not items:
        return None
    culprit = rng.randrange(len(items))
    message = CONFLICT_MESSAGE if code == "TransactionConflict" else CAPACITY_MESSAGE
    reasons: list[dict[str, str]] = [{"Code": "None"} for _ in items]
    reasons[culprit] = {"Code": code, "Message": message}
    summary = ", ".join(reason["Code"] for reason in reasons)
    return dynamodb_error(
        400,
        "TransactionCanceledException",
        "Transaction cancelled, please refer cancellation reasons for specific reasons "
        f"[{summary}]",
        reasons=reasons,
    )


# --- batches that partly fail ----------------------------------------------------------------


@dataclass
class BatchSplit:
    """What is forwarded of a batch (`body`, None when nothing is) and what is answered as
    failed without being forwarded."""

    call: AwsCall
    body: bytes | None
    failed: list[Any]

    def merge(self, upstream: Reply | None) -> Reply:
        """The upstream's answer to the forwarded part with the failed entries added, as
        one answer; an upstream error is passed on as it is."""
        if upstream is not None and upstream.status != 200:
            return upstream
        if self.call.service == "sns":
            return _sns_merge(self, upstream)
        base = upstream or Reply(
            200, [("Content-Type", JSON_1_0), ("x-amzn-RequestId", _request_id())]
        )
        try:
            data = json.loads(base.body or b"{}")
        except ValueError:
            return base
        if self.call.service == "dynamodb":
            unprocessed = data.setdefault("UnprocessedItems", {})
            for table, request in self.failed:
                unprocessed.setdefault(table, []).append(request)
        else:
            data.setdefault("Successful", [])
            failed = [
                {
                    "Id": entry_id,
                    "SenderFault": False,
                    "Code": "InternalError",
                    "Message": INTERNAL_MESSAGE,
                }
                for entry_id in self.failed
            ]
            data["Failed"] = list(data.get("Failed") or []) + failed
        return base.with_body(json.dumps(data).encode())


def _pick_failed(count: int, rng: random.Random, *, keep_one: bool) -> set[int]:
    """Indexes of the entries that fail: at least one, and, with `keep_one`, not all."""
    most = count - 1 if keep_one else count
    if most < 1:
        return set()
    return set(rng.sample(range(count), rng.randint(1, most)))


def split_batch(call: AwsCall, rng: random.Random) -> BatchSplit | None:
    """Some entries of a batch to fail; None when the request is not a batch this can split
    (the service then answers it whole)."""
    if call.service == "sns":
        return _sns_split(call, rng)
    data = call.json()
    if data is None:
        return None
    if call.service == "dynamodb":
        requests = data.get("RequestItems")
        if not isinstance(requests, dict):
            return None
        flat = [
            (table, request)
            for table, entries in requests.items()
            if isinstance(entries, list)
            for request in entries
        ]
        # A BatchWriteItem with nothing processed is a ProvisionedThroughputExceeded, not a
        # partial result, so one request always goes through.
        chosen = _pick_failed(len(flat), rng, keep_one=True)
        if not chosen:
            return None
        kept: dict[str, list[Any]] = {}
        for index, (table, request) in enumerate(flat):
            if index not in chosen:
                kept.setdefault(table, []).append(request)
        rest = json.dumps({**data, "RequestItems": kept}).encode()
        return BatchSplit(call, rest, [flat[i] for i in sorted(chosen)])
    entries = data.get("Entries")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        return None
    chosen = _pick_failed(len(entries), rng, keep_one=False)
    if not chosen:
        return None
    kept_entries = [e for i, e in enumerate(entries) if i not in chosen]
    body = json.dumps({**data, "Entries": kept_entries}).encode() if kept_entries else None
    return BatchSplit(call, body, [entries[i].get("Id") for i in sorted(chosen)])


def _sns_split(call: AwsCall, rng: random.Random) -> BatchSplit | None:
    params: list[tuple[str, str]] = []
    entries: dict[int, list[tuple[str, str]]] = {}
    for key, value in call.form():
        match = _SNS_ENTRY.match(key)
        if match:
            entries.setdefault(int(match.group(1)), []).append((match.group(2), value))
        else:
            params.append((key, value))
    numbers = sorted(entries)
    chosen = _pick_failed(len(numbers), rng, keep_one=False)
    if not chosen:
        return None
    kept = [n for i, n in enumerate(numbers) if i not in chosen]
    for position, number in enumerate(kept, start=1):
        prefix = f"PublishBatchRequestEntries.member.{position}."
        params.extend((prefix + name, value) for name, value in entries[number])
    failed = [dict(entries[numbers[i]]).get("Id", "") for i in sorted(chosen)]
    return BatchSplit(call, urlencode(params).encode() if kept else None, failed)


def _sns_merge(split: BatchSplit, upstream: Reply | None) -> Reply:
    members = "".join(
        f"<member><Id>{escape(str(entry_id))}</Id><Code>InternalError</Code>"
        f"<Message>{INTERNAL_MESSAGE}</Message><SenderFault>false</SenderFault></member>"
        for entry_id in split.failed
    )
    if upstream is None:
        text = (
            f'<PublishBatchResponse xmlns="{SNS_XMLNS}"><PublishBatchResult><Successful/>'
            f"<Failed>{members}</Failed></PublishBatchResult><ResponseMetadata>"
            f"<RequestId>{_request_id()}</RequestId></ResponseMetadata></PublishBatchResponse>"
        )
        headers = [("Content-Type", "text/xml"), ("x-amzn-RequestId", _request_id())]
        return Reply(200, headers, text.encode())
    text = upstream.body.decode("utf-8")
    if "<Failed/>" in text:
        text = text.replace("<Failed/>", f"<Failed>{members}</Failed>", 1)
    elif "</Failed>" in text:
        text = text.replace("</Failed>", f"{members}</Failed>", 1)
    else:
        end = "</PublishBatchResult>"
        text = text.replace(end, f"<Failed>{members}</Failed>{end}", 1)
    return upstream.with_body(text.encode())
