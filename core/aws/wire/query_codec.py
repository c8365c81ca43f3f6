"""The query protocol's requests and answers (SNS), written and read by botocore's own
serializer and parser: the form-encoded parameters and the XML answer are botocore's to
the byte, and only what surrounds them (the event chain, endpoint rules, urllib3 and
http.client) is left out.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from botocore.parsers import create_parser
from botocore.serialize import create_serializer

from core.aws.wire.connections import Reply


class QueryCodec:
    def __init__(self) -> None:
        self._serializer = create_serializer("query", include_validation=False)
        self._parser = create_parser("query")

    def encode(self, model: Any, params: dict[str, Any]) -> tuple[dict[str, str], bytes]:
        request = self._serializer.serialize_to_request(params, model)
        body = request["body"]
        if isinstance(body, dict):  # as botocore's request preparer encodes it
            pairs = [(_utf8(k), _utf8(v)) for k, v in body.items()]
            body = urlencode(pairs, doseq=True)
        data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        return dict(request["headers"]), data

    def decode(self, model: Any, reply: Reply) -> dict[str, Any]:
        parsed: dict[str, Any] = self._parser.parse(
            {"status_code": reply.status, "headers": reply.headers, "body": reply.content},
            model.output_shape,
        )
        metadata = parsed.setdefault("ResponseMetadata", {})
        metadata["HTTPStatusCode"] = reply.status
        metadata["HTTPHeaders"] = dict(reply.headers)
        return parsed


def _utf8(value: Any) -> Any:
    return value.encode("utf-8") if isinstance(value, str) else value
