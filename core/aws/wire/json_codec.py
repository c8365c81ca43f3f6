"""The JSON protocols' requests and answers (DynamoDB, SQS), as botocore writes and reads
them, without botocore's generic shape walk.

The request is botocore's for the operation (`X-Amz-Target`, the protocol's content type,
SQS's query-mode header) with the parameters as the wire JSON they already are (bytes as
base64, as botocore sends blobs). The answer is parsed as botocore parses it: the JSON as
is, `ResponseMetadata` added; an error with `Error.Code` and `Error.Message`, the modeled
fields (a transaction's `CancellationReasons`, a refused write's `Item`) at the top level
and, for SQS, the code botocore reports (the `x-amzn-query-error` one) with the error's
shape name as `QueryErrorCode`, which picks the exception class.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from botocore.exceptions import BotoCoreError

from core.aws.wire.connections import Reply


class UnparsableAnswer(BotoCoreError):
    """A success status with a body that is not the protocol's (a proxy's page)."""

    fmt = "{operation}: HTTP {status} with an answer that is not the protocol's"


class JsonCodec:
    def __init__(self, service_model: Any) -> None:
        version = service_model.metadata.get("jsonVersion", "1.0")
        self._headers = {"Content-Type": f"application/x-amz-json-{version}"}
        if service_model.is_query_compatible:
            self._headers["x-amzn-query-mode"] = "true"
        self._prefix = service_model.metadata["targetPrefix"]

    def encode(self, model: Any, params: dict[str, Any]) -> tuple[dict[str, str], bytes]:
        headers = {**self._headers, "X-Amz-Target": f"{self._prefix}.{model.name}"}
        return headers, json.dumps(params, separators=(",", ":"), default=_blob).encode("utf-8")

    def decode(self, model: Any, reply: Reply) -> dict[str, Any]:
        metadata = response_metadata(reply)
        try:
            body = json.loads(reply.content) if reply.content else {}
        except ValueError:
            body = None
        if not isinstance(body, dict):  # not JSON: a proxy's or load balancer's page
            if reply.status < 300:
                raise UnparsableAnswer(operation=model.name, status=reply.status)
            body = {}
        if reply.status < 300:
            body["ResponseMetadata"] = metadata
            if model.name == "ReceiveMessage":
                _decode_binary_attributes(body)
            return body
        return _error(body, reply, metadata)


def response_metadata(reply: Reply) -> dict[str, Any]:
    metadata: dict[str, Any] = {"HTTPStatusCode": reply.status, "HTTPHeaders": dict(reply.headers)}
    request_id = reply.headers.get("x-amzn-requestid")
    if request_id:
        metadata["RequestId"] = request_id
    return metadata


def _error(body: dict[str, Any], reply: Reply, metadata: dict[str, Any]) -> dict[str, Any]:
    error: dict[str, Any] = {"Message": body.get("message", body.get("Message", ""))}
    code = str(body.get("__type") or reply.status)
    if ":" in code:
        code = code.split(":", 1)[0]
    if "#" in code:
        code = code.rsplit("#", 1)[1]
    query_error = reply.headers.get("x-amzn-query-error")
    if query_error:
        parts = query_error.split(";")
        if len(parts) == 2 and parts[0]:
            error["QueryErrorCode"] = code
            error["Type"] = parts[1]
            code = parts[0]
    error["Code"] = code
    parsed: dict[str, Any] = {
        k: v for k, v in body.items() if k not in ("__type", "message", "Message")
    }
    parsed["Error"] = error
    parsed["ResponseMetadata"] = metadata
    return parsed


def _blob(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _decode_binary_attributes(body: dict[str, Any]) -> None:
    """Binary message attributes as bytes, as botocore's parser gives blobs."""
    for message in body.get("Messages") or []:
        for attribute in (message.get("MessageAttributes") or {}).values():
            if "BinaryValue" in attribute:
                attribute["BinaryValue"] = base64.b64decode(attribute["BinaryValue"])
            if "BinaryListValues" in attribute:
                attribute["BinaryListValues"] = [
                    base64.b64decode(v) for v in attribute["BinaryListValues"]
                ]
