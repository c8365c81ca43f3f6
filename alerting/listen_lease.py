"""Who listens on a data source: one lease item per data source in DynamoDB.

    PK LISTEN#<data source>   SK LEASE   owner, lease_until

One process holds a data source's listening connection at a time: it claims the lease
with a conditional write (free, lapsed, or already its own) and renews it every third of
its length; another process takes it over once it lapses. A process that cannot renew
(AWS unreachable) gives the connection up when its own lease runs out, so two listeners
overlap at most by the clocks' skew; their runs share ids (`alerting/listen_runs.py`), so
an overlap costs no second evaluation.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from core.aws import dynamo
from core.aws import errors as aws_errors
from core.catalogue.models import iso


def lease_key(datasource: str) -> dict[str, Any]:
    return {dynamo.PK: {"S": f"LISTEN#{datasource}"}, dynamo.SK: {"S": "LEASE"}}


class ListenLeases:
    def __init__(self, dynamodb: Any, table: str, owner: str) -> None:
        self._db = dynamodb
        self._table = table
        self.owner = owner

    def claim(self, datasource: str, now: datetime, seconds: float) -> bool:
        """Take or renew the lease; False when another process holds it."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key=lease_key(datasource),
                UpdateExpression="SET #o = :me, lease_until = :until",
                ConditionExpression="attribute_not_exists(#o) OR lease_until < :now OR #o = :me",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={
                    ":me": {"S": self.owner},
                    ":until": {"S": iso(now + timedelta(seconds=seconds))},
                    ":now": {"S": iso(now)},
                },
            )
        except ClientError as exc:
            if aws_errors.is_refusal(exc):
                return False
            raise
        return True

    def release(self, datasource: str) -> None:
        """Give the lease up (a stopping listener), so the next owner need not wait."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key=lease_key(datasource),
                UpdateExpression="REMOVE #o, lease_until",
                ConditionExpression="#o = :me",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":me": {"S": self.owner}},
            )
        except ClientError as exc:
            if not aws_errors.is_refusal(exc):
                raise

    def holder(self, datasource: str) -> str | None:
        resp = self._db.get_item(
            TableName=self._table, Key=lease_key(datasource), ConsistentRead=True
        )
        owner = resp.get("Item", {}).get("owner", {}).get("S")
        return str(owner) if owner else None
