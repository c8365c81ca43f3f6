"""The directory: a tenant's users and topics, listed a page at a time without a Scan.

A sparse GSI `by_directory` holds only the items that carry its two attributes: each user's
profile and each topic's count item.

| item        | `directory`        | `directory_key` |
|-------------|--------------------|-----------------|
| user        | `USER#<tenant>`    | the user id as the tenant knows it |
| topic count | `TOPIC#<tenant>`   | the topic name as the tenant knows it |

So listing a tenant's users is one Query on one partition, in id order, with `Limit`: the
read is bounded by the page. The store that writes a profile or a count item adds the
attributes (`entry`); provisioning adds the index to a table made before it. A profile
written before the index existed is listed once it is written again (PUT /users/{id}).

One partition per tenant and kind takes every profile write of that tenant; at DynamoDB's
1,000 writes per second per partition key this bounds profile churn, not reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from core.aws import dynamo
from core.security.tenants import DEFAULT_TENANT, SEPARATOR

GSI_BY_DIRECTORY = "by_directory"
PARTITION = "directory"
SORT = "directory_key"

Kind = Literal["USER", "TOPIC"]


def split(stored_id: str) -> tuple[str, str]:
    """(tenant, local id) of a stored user id or topic name (`core.security.tenants`)."""
    tenant, found, local = stored_id.partition(SEPARATOR)
    return (tenant, local) if found else (DEFAULT_TENANT, stored_id)


def entry(kind: Kind, stored_id: str) -> dict[str, str]:
    """The attributes that put an item in its tenant's directory."""
    tenant, local = split(stored_id)
    return {PARTITION: f"{kind}#{tenant}", SORT: local}


def index_spec() -> dict[str, Any]:
    return {
        "IndexName": GSI_BY_DIRECTORY,
        "KeySchema": [
            {"AttributeName": PARTITION, "KeyType": "HASH"},
            {"AttributeName": SORT, "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "ALL"},
    }


@dataclass(frozen=True)
class DirectoryPage:
    items: list[dict[str, Any]]
    """Each item's attributes, plain (the local id under `directory_key`)."""
    next_cursor: str | None


class Directory:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self._db = dynamodb
        self._table = table

    def page(self, kind: Kind, tenant: str, limit: int, cursor: str | None = None) -> DirectoryPage:
        """One page in id order; reads one item past it so the last page has no cursor."""
        partition = f"{kind}#{tenant}"
        start = dynamo.decode_cursor(cursor, {dynamo.PK, dynamo.SK, PARTITION, SORT})
        if start is not None and start[PARTITION].get("S") != partition:
            raise dynamo.BadCursor("cursor belongs to another listing")
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": GSI_BY_DIRECTORY,
            "KeyConditionExpression": "#d = :d",
            "ExpressionAttributeNames": {"#d": PARTITION},
            "ExpressionAttributeValues": {":d": {"S": partition}},
        }
        keys = (dynamo.PK, dynamo.SK, PARTITION, SORT)
        page, next_cursor = dynamo.query_page(self._db, kwargs, limit, start, keys)
        return DirectoryPage([dynamo.from_item(i) for i in page], next_cursor)
