"""The capacity meter against a real emulator on loopback: the units DynamoDB would bill for
the items actually written and read, by table, index and partition key; SQS and SNS
requests by 64 KB chunk."""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from localstack.capacity import number_size
from localstack.capacity_moto import UNMETERED
from tests.support import running_emulator


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_emulator(tmp_path_factory.mktemp("capacity"), "--quiet", "--capacity") as url:
        yield url


def capacity(endpoint: str, method: str = "GET") -> Any:
    request = urllib.request.Request(f"{endpoint}/_capacity?top=5", method=method)
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.fixture
def db(endpoint: str) -> Any:
    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    return client


def make_table(db: Any, range_key: bool = False) -> str:
    """A table keyed on `pk` (and `sk`), with two indexes on `g`: one projecting ALL and one
    KEYS_ONLY."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    keys = [{"AttributeName": "pk", "KeyType": "HASH"}]
    attrs = [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "g", "AttributeType": "S"},
    ]
    if range_key:
        keys.append({"AttributeName": "sk", "KeyType": "RANGE"})
        attrs.append({"AttributeName": "sk", "AttributeType": "S"})
    db.create_table(
        TableName=name,
        KeySchema=keys,
        AttributeDefinitions=attrs,
        BillingMode="PAY_PER_REQUEST",
        GlobalSecondaryIndexes=[
            {
                "IndexName": "all",
                "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            },
            {
                "IndexName": "keys",
                "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
        ],
    )
    return name


def item(pk: str, size: int, **extra: str) -> dict[str, Any]:
    """An item of exactly `size` bytes by DynamoDB's rules (names + UTF-8 values)."""
    out: dict[str, Any] = {"pk": {"S": pk}}
    used = 2 + len(pk.encode())
    for name, value in extra.items():
        out[name] = {"S": value}
        used += len(name) + len(value.encode())
    out["pad"] = {"S": "x" * (size - used - 3)}
    return out


def units(report: dict[str, Any], table: str, target: str = "(table)") -> dict[str, Any]:
    return report["dynamodb"]["tables"].get(table, {}).get(target, {"wcu": 0.0, "rcu": 0.0})


def test_number_sizes_follow_significant_digits() -> None:
    assert number_size("7") == 2
    assert number_size("12345") == 4  # 5 digits: 3 bytes + 1
    assert number_size("-0.00120") == 2  # leading and trailing zeros trimmed: "12"
    assert number_size("1000000") == 2


def test_put_costs_one_unit_per_kb_and_double_in_a_transaction(db: Any, endpoint: str) -> None:
    table = make_table(db)
    capacity(endpoint, "DELETE")
    db.put_item(TableName=table, Item=item("a", 3000))
    assert units(capacity(endpoint), table)["wcu"] == 3
    db.transact_write_items(TransactItems=[{"Put": {"TableName": table, "Item": item("b", 3000)}}])
    report = capacity(endpoint)
    assert units(report, table)["wcu"] == 3 + 6
    ops = units(report, table)["by_operation"]
    assert ops["TransactWriteItems.Put"]["wcu"] == 6
    # neither item has `g`: no index entry, no index units
    assert "all" not in report["dynamodb"]["tables"][table]


def test_update_of_a_large_item_costs_its_size_and_indexes_by_projection(
    db: Any, endpoint: str
) -> None:
    table = make_table(db)
    db.put_item(TableName=table, Item=item("a", 5000, g="G1"))
    capacity(endpoint, "DELETE")
    # `note` is projected by the ALL index only: the KEYS_ONLY index has nothing to write
    db.update_item(
        TableName=table,
        Key={"pk": {"S": "a"}},
        UpdateExpression="SET note = :n",
        ExpressionAttributeValues={":n": {"S": "hi"}},
    )
    report = capacity(endpoint)
    assert units(report, table)["wcu"] == 5  # ceil(5006 / 1024)
    assert units(report, table, "all")["wcu"] == 5  # ceil((5006 + 100) / 1024)
    assert units(report, table, "keys")["wcu"] == 0


def test_entering_leaving_and_moving_in_an_index(db: Any, endpoint: str) -> None:
    table = make_table(db)
    db.put_item(TableName=table, Item=item("a", 2900))
    capacity(endpoint, "DELETE")

    def update(expression: str, values: dict[str, Any] | None = None) -> None:
        kwargs: dict[str, Any] = {"ExpressionAttributeValues": values} if values else {}
        db.update_item(
            TableName=table, Key={"pk": {"S": "a"}}, UpdateExpression=expression, **kwargs
        )

    update("SET g = :g", {":g": {"S": "G1"}})  # enters both: one put each
    after_enter = capacity(endpoint)
    assert units(after_enter, table, "all")["wcu"] == 3  # ceil((2903 + 100) / 1024)
    assert units(after_enter, table, "keys")["wcu"] == 1  # pk + g + 100 bytes
    update("SET g = :g", {":g": {"S": "G2"}})  # index key changed: delete + put
    after_move = capacity(endpoint)
    assert units(after_move, table, "all")["wcu"] == 3 + 3 + 3
    assert units(after_move, table, "keys")["wcu"] == 1 + 2
    update("REMOVE g")  # leaves both: one delete each
    after_leave = capacity(endpoint)
    assert units(after_leave, table, "all")["wcu"] == 9 + 3
    assert units(after_leave, table, "keys")["wcu"] == 3 + 1
    keys = {
        h["key"]: h["wcu"]
        for h in after_leave["dynamodb"]["tables"][table]["keys"]["hottest_by_wcu"]
    }
    assert keys == {"G1": 2.0, "G2": 2.0}  # G1: put, delete; G2: put, delete


def test_a_refused_write_consumes_units_and_writes_no_index(db: Any, endpoint: str) -> None:
    table = make_table(db)
    db.put_item(TableName=table, Item=item("a", 2000, g="G1"))
    capacity(endpoint, "DELETE")
    with pytest.raises(db.exceptions.ConditionalCheckFailedException):
        db.put_item(
            TableName=table,
            Item=item("a", 1000, g="G1"),
            ConditionExpression="attribute_not_exists(pk)",
        )
    report = capacity(endpoint)
    assert units(report, table)["wcu"] == 2  # the larger: the 2,000-byte existing item
    assert units(report, table, "all")["wcu"] == 0


def test_a_condition_check_is_a_transactional_write_of_its_item(db: Any, endpoint: str) -> None:
    table = make_table(db)
    db.put_item(TableName=table, Item=item("a", 1500, g="G1"))
    capacity(endpoint, "DELETE")
    db.transact_write_items(
        TransactItems=[
            {
                "ConditionCheck": {
                    "TableName": table,
                    "Key": {"pk": {"S": "a"}},
                    "ConditionExpression": "attribute_exists(pk)",
                }
            },
            {"Put": {"TableName": table, "Item": item("b", 500)}},
        ]
    )
    report = capacity(endpoint)
    ops = units(report, table)["by_operation"]
    assert ops["TransactWriteItems.ConditionCheck"]["wcu"] == 4  # 2 KB rounded, twice
    assert ops["TransactWriteItems.Put"]["wcu"] == 2
    assert units(report, table, "all")["wcu"] == 0  # the checked item is not written


def test_reads_by_size_and_consistency(db: Any, endpoint: str) -> None:
    table = make_table(db, range_key=True)
    big = item("p", 5000)
    big["sk"] = {"S": "big"}
    db.put_item(TableName=table, Item=big)
    capacity(endpoint, "DELETE")
    key = {"pk": {"S": "p"}, "sk": {"S": "big"}}
    db.get_item(TableName=table, Key=key)  # 2 x 4 KB, eventually consistent: 1
    assert units(capacity(endpoint), table)["rcu"] == 1
    db.get_item(TableName=table, Key=key, ConsistentRead=True)  # 2
    db.transact_get_items(TransactItems=[{"Get": {"TableName": table, "Key": key}}])  # 4
    db.get_item(TableName=table, Key={"pk": {"S": "p"}, "sk": {"S": "none"}})  # 0.5
    assert units(capacity(endpoint), table)["rcu"] == 1 + 2 + 4 + 0.5


def test_query_sums_the_items_read_before_the_filter(db: Any, endpoint: str) -> None:
    table = make_table(db, range_key=True)
    for i in range(3):
        row = item("q", 1500, g="G")
        row["sk"] = {"S": f"s{i}"}
        db.put_item(TableName=table, Item=row)
    capacity(endpoint, "DELETE")
    found = db.query(
        TableName=table,
        KeyConditionExpression="pk = :p",
        FilterExpression="sk = :none",
        ExpressionAttributeValues={":p": {"S": "q"}, ":none": {"S": "nothing"}},
        ConsistentRead=True,
    )
    assert found["Items"] == []
    # 3 x 1,504 bytes = 4,512: 2 units, not 3 (one 4 KB rounding per request)
    assert units(capacity(endpoint), table)["rcu"] == 2
    db.query(
        TableName=table,
        IndexName="keys",
        KeyConditionExpression="g = :g",
        ExpressionAttributeValues={":g": {"S": "G"}},
    )
    report = capacity(endpoint)
    assert units(report, table, "keys")["rcu"] == 0.5  # three small projected entries
    assert report["dynamodb"]["tables"][table]["keys"]["hottest_by_rcu"][0]["key"] == "G"


def test_writes_are_attributed_to_their_partition_keys(db: Any, endpoint: str) -> None:
    table = make_table(db, range_key=True)
    capacity(endpoint, "DELETE")
    for i in range(3):
        db.put_item(TableName=table, Item={"pk": {"S": "hot"}, "sk": {"S": str(i)}})
    db.batch_write_item(
        RequestItems={table: [{"PutRequest": {"Item": {"pk": {"S": "cold"}, "sk": {"S": "0"}}}}]}
    )
    hottest = capacity(endpoint)["dynamodb"]["tables"][table]["(table)"]["hottest_by_wcu"]
    assert [(h["key"], h["wcu"]) for h in hottest] == [("hot", 3.0), ("cold", 1.0)]
    assert hottest[0]["peak_per_second"] <= 3.0


def test_a_hot_key_says_which_writes_of_which_items_made_it_hot(db: Any, endpoint: str) -> None:
    table = make_table(db, range_key=True)
    capacity(endpoint, "DELETE")
    db.put_item(TableName=table, Item={"pk": {"S": "hot"}, "sk": {"S": "EVENT#TALLY#3"}})
    for _ in range(2):
        db.update_item(
            TableName=table,
            Key={"pk": {"S": "hot"}, "sk": {"S": "NOTIF#email#u-1"}},
            UpdateExpression="SET n = :n",
            ExpressionAttributeValues={":n": {"N": "1"}},
        )
    (hot,) = capacity(endpoint)["dynamodb"]["tables"][table]["(table)"]["hottest_by_wcu"]
    ops = {
        op.split(" ", 1)[0] + " " + op.rsplit(" ", 1)[-1]: u
        for op, u in hot["by_operation"].items()
    }
    assert ops == {"PutItem EVENT#TALLY": 1.0, "UpdateItem NOTIF#email": 2.0}


def test_requests_marked_unmetered_are_not_counted(db: Any, endpoint: str) -> None:
    table = make_table(db)
    capacity(endpoint, "DELETE")

    def mark(request: Any, **_: Any) -> None:
        request.headers[UNMETERED] = "1"

    quiet = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    quiet.meta.events.register("before-sign.dynamodb", mark)
    quiet.put_item(TableName=table, Item=item("a", 3000))
    db.put_item(TableName=table, Item=item("b", 1000))
    assert units(capacity(endpoint), table)["wcu"] == 1


def test_sqs_and_sns_bill_64_kb_chunks(endpoint: str) -> None:
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
    sns = boto3.client("sns", endpoint_url=endpoint, region_name="us-east-1")
    url = sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    topic = sns.create_topic(Name=f"t-{uuid.uuid4().hex[:8]}")["TopicArn"]
    capacity(endpoint, "DELETE")
    sqs.send_message(QueueUrl=url, MessageBody="x" * 100_000)  # 2 chunks
    sqs.send_message_batch(
        QueueUrl=url,
        Entries=[{"Id": str(i), "MessageBody": "y" * 40_000} for i in range(4)],  # 160 KB: 3
    )
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)
    sns.publish(TopicArn=topic, Message="z" * 70_000)  # 2 chunks
    sns.publish_batch(
        TopicArn=topic,
        PublishBatchRequestEntries=[{"Id": str(i), "Message": "w" * 30_000} for i in range(3)],
    )  # one request, 90 KB: 2 chunks
    report = capacity(endpoint)
    assert report["sqs"]["SendMessage"]["billed"] == 2
    assert report["sqs"]["SendMessageBatch"]["billed"] == 3
    assert report["sqs"]["ReceiveMessage"] == {"requests": 1, "billed": 1}
    assert report["sns"]["Publish"]["billed"] == 2
    assert report["sns"]["PublishBatch"] == {"requests": 1, "billed": 2, "messages": 3}


def test_writes_are_reported_by_the_kind_of_item_they_wrote() -> None:
    from localstack.capacity_moto import item_kind

    assert item_kind("NOTIF#sms#u1") == "NOTIF"
    assert item_kind("EVENT#TALLY") == "EVENT#TALLY"
    assert item_kind("EVENT") == "EVENT"
    assert item_kind(None) == ""
