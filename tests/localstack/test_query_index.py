"""The emulator's Query reads one partition (`localstack.query_index`), and answers what a
whole-table read answers, whatever wrote the items: every write API, moving an item
between index partitions, removing its index key, deleting it, a cancelled transaction."""

from __future__ import annotations

import random
import uuid
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

GROUPS = ["g0", "g1", "g2"]
PARTITIONS = ["p0", "p1"]
# Random writes per seed, each followed by every query: with each seed every kind of write
# comes six times or more, over 16 keys (each query pages through a few dozen requests).
WRITES = 75


def new_table(endpoint: str) -> tuple[Any, str]:
    db = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    table = f"qi-{uuid.uuid4().hex[:8]}"
    db.create_table(
        TableName=table,
        KeySchema=[
            {"AttributeName": "PK", "KeyType": "HASH"},
            {"AttributeName": "SK", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": n, "AttributeType": "S"} for n in ("PK", "SK", "grp", "ts")
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by_group",
                "KeySchema": [
                    {"AttributeName": "grp", "KeyType": "HASH"},
                    {"AttributeName": "ts", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return db, table


def keys_of(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(i["PK"]["S"], i["SK"]["S"]) for i in items]


def query_all(db: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """Every page, one item a page, so paging from a start key is exercised too."""
    out: list[dict[str, Any]] = []
    while True:
        resp = db.query(Limit=2, **kwargs)
        out += resp["Items"]
        if "LastEvaluatedKey" not in resp:
            return out
        kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


def expected(db: Any, table: str) -> list[dict[str, Any]]:
    return db.scan(TableName=table, ConsistentRead=True)["Items"]


def check(db: Any, table: str) -> None:
    items = expected(db, table)
    for group in GROUPS:
        mine = [i for i in items if i.get("grp", {}).get("S") == group and "ts" in i]
        want = sorted(mine, key=lambda i: (i["ts"]["S"], i["PK"]["S"], i["SK"]["S"]))
        got = query_all(
            db,
            TableName=table,
            IndexName="by_group",
            KeyConditionExpression="grp = :g",
            ExpressionAttributeValues={":g": {"S": group}},
        )
        assert keys_of(got) == keys_of(want), group
    for pk in PARTITIONS:
        want = sorted((i for i in items if i["PK"]["S"] == pk), key=lambda i: i["SK"]["S"])
        got = query_all(
            db,
            TableName=table,
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues={":pk": {"S": pk}},
        )
        assert keys_of(got) == keys_of(want), pk


def key(rng: random.Random) -> dict[str, Any]:
    return {"PK": {"S": rng.choice(PARTITIONS)}, "SK": {"S": f"s{rng.randrange(8)}"}}


def item(rng: random.Random) -> dict[str, Any]:
    out = {**key(rng), "grp": {"S": rng.choice(GROUPS)}, "ts": {"S": f"t{rng.randrange(50):02}"}}
    if rng.random() < 0.2:
        del out["ts"]  # not in the index
    return out


def write(db: Any, table: str, rng: random.Random) -> None:
    kind = rng.choice(["put", "move", "unindex", "delete", "transact", "cancelled", "batch"])
    if kind == "put":
        db.put_item(TableName=table, Item=item(rng))
    elif kind == "move":  # to another index partition, in place
        db.update_item(
            TableName=table,
            Key=key(rng),
            UpdateExpression="SET grp = :g, ts = :t",
            ExpressionAttributeValues={
                ":g": {"S": rng.choice(GROUPS)},
                ":t": {"S": f"t{rng.randrange(50):02}"},
            },
        )
    elif kind == "unindex":
        db.update_item(TableName=table, Key=key(rng), UpdateExpression="REMOVE ts")
    elif kind == "delete":
        db.delete_item(TableName=table, Key=key(rng))
    elif kind in ("transact", "cancelled"):
        first, second = item(rng), item(rng)
        if (first["PK"], first["SK"]) == (second["PK"], second["SK"]):
            return
        ops: list[dict[str, Any]] = [
            {"Put": {"TableName": table, "Item": first}},
            {
                "Update": {
                    "TableName": table,
                    "Key": {"PK": second["PK"], "SK": second["SK"]},
                    "UpdateExpression": "SET grp = :g",
                    "ExpressionAttributeValues": {":g": second["grp"]},
                }
            },
        ]
        if kind == "cancelled":  # applied item by item, then undone
            ops[1]["Update"]["ConditionExpression"] = "attribute_exists(nothing_has_this)"
        try:
            db.transact_write_items(TransactItems=ops)
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "TransactionCanceledException"
    else:
        requests: dict[tuple[str, str], dict[str, Any]] = {}
        for _ in range(4):
            if rng.random() < 0.7:
                new = item(rng)
                requests[(new["PK"]["S"], new["SK"]["S"])] = {"PutRequest": {"Item": new}}
            else:
                gone = key(rng)
                requests[(gone["PK"]["S"], gone["SK"]["S"])] = {"DeleteRequest": {"Key": gone}}
        db.batch_write_item(RequestItems={table: list(requests.values())})


@pytest.mark.parametrize("seed", [1, 2])
def test_queries_answer_what_the_whole_table_holds(moto_endpoint: str, seed: int) -> None:
    db, table = new_table(moto_endpoint)
    rng = random.Random(seed)
    for _ in range(10):  # items before the index is first queried: its map is built whole
        db.put_item(TableName=table, Item=item(rng))
    check(db, table)
    for _ in range(WRITES):
        write(db, table, rng)
        check(db, table)
