"""A popular topic counts its subscribers on several items, so subscribers do not all
transact on one; the count stays exact and the limit is never passed."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from core.aws import dynamo
from core.aws.clients import AwsClients
from core.directory import topic_counts
from core.directory.listing import Directory
from core.directory.profiles import ProfileFields
from core.directory.subscriptions import TopicFull
from core.directory.users import UserStore
from core.platform.settings import Settings
from localstack.faults import FaultProxy, FaultRule
from tests.conftest import Stack

TOPIC = "charts.big"


def users(stack: Stack, count: int) -> UserStore:
    store = UserStore(stack.clients.dynamodb, stack.clients.names.table)
    for i in range(count):
        store.put_profile(f"u-{i}", ProfileFields(email=f"u{i}@example.com"))
    return store


def count_items(stack: Stack) -> dict[str, int]:
    found = stack.clients.dynamodb.query(
        TableName=stack.clients.names.table,
        KeyConditionExpression="PK = :pk AND begins_with(SK, :c)",
        ExpressionAttributeValues={
            ":pk": {"S": dynamo.topic_pk(TOPIC)},
            ":c": {"S": topic_counts.COUNT_SK},
        },
        ConsistentRead=True,
    )["Items"]
    return {i["SK"]["S"]: int(i.get("subscribers", {}).get("N", "0")) for i in found}


def test_subscribers_of_a_large_topic_count_on_several_items(stack: Stack) -> None:
    store = users(stack, 40)
    for i in range(40):
        store.subscribe(TOPIC, f"u-{i}", max_subscribers=100_000)
    items = count_items(stack)
    assert len(items) > 4  # 40 subscribers over 16 shards
    assert sum(items.values()) == 40 == store.counts.total(TOPIC)

    for i in range(10):
        assert store.unsubscribe(TOPIC, f"u-{i}")
    assert not store.unsubscribe(TOPIC, "u-0")
    assert store.counts.total(TOPIC) == 30

    page = Directory(stack.clients.dynamodb, stack.clients.names.table).page("TOPIC", "default", 10)
    assert [i["directory_key"] for i in page.items] == [TOPIC]
    assert store.counts.totals(page.items) == [30]


def test_a_small_topic_keeps_one_exact_count(stack: Stack) -> None:
    store = users(stack, 3)
    for i in range(3):
        store.subscribe(TOPIC, f"u-{i}", max_subscribers=500)
    assert count_items(stack) == {"COUNT": 3}


def test_a_full_shard_refuses_its_subscribers_and_not_the_others(stack: Stack) -> None:
    store = users(stack, 30)
    limit = 2 * topic_counts.SUBSCRIBERS_PER_SHARD  # two shards, each holding half
    shards = topic_counts.shards_for(limit)
    assert shards == 2
    full_shard = topic_counts.shard_of("u-0", shards)
    stack.clients.dynamodb.put_item(
        TableName=stack.clients.names.table,
        Item={
            **topic_counts.count_key(TOPIC, full_shard),
            "subscribers": {"N": str(limit // shards)},
        },
    )
    refused, accepted = [], []
    for i in range(30):
        user = f"u-{i}"
        try:
            store.subscribe(TOPIC, user, max_subscribers=limit)
            accepted.append(user)
        except TopicFull as exc:
            assert not exc.exact
            refused.append(user)
    assert refused and accepted
    assert {topic_counts.shard_of(u, shards) for u in refused} == {full_shard}
    assert {topic_counts.shard_of(u, shards) for u in accepted} == {1 - full_shard}
    assert store.counts.total(TOPIC) == limit // shards + len(accepted)


def test_a_subscription_is_uncounted_on_its_own_shard_after_the_limit_changed(
    stack: Stack,
) -> None:
    store = users(stack, 8)
    for i in range(8):
        store.subscribe(TOPIC, f"u-{i}", max_subscribers=None)  # sixteen shards
    before: dict[str, Any] = count_items(stack)
    for i in range(8):
        store.unsubscribe(TOPIC, f"u-{i}")
    after = count_items(stack)
    assert set(after) == set(before) and set(after.values()) == {0}


@pytest.mark.parametrize("limit", [1, 999, 1000, 16_000, 10**9])
def test_shards_follow_the_limit(limit: int) -> None:
    shards = topic_counts.shards_for(limit)
    assert 1 <= shards <= topic_counts.MAX_SHARDS
    assert shards * (limit // shards) <= limit


@pytest.mark.parametrize("limit", [100_000, 100])  # 16 count shards, and one
def test_concurrent_subscribes_all_succeed_and_are_all_counted(
    stack: Stack, fault_proxy: FaultProxy, faulty_settings: Settings, limit: int
) -> None:
    """Subscribes racing on one topic, a quarter of whose transactions DynamoDB cancels as
    conflicting (what concurrent transactions on one count item get on AWS): every one
    succeeds and the count is exact; the same for the unsubscribes."""
    users(stack, 30)
    faulty = AwsClients(faulty_settings)
    store = UserStore(faulty.dynamodb, faulty.names.table)
    fault_proxy.set_rules(
        [FaultRule("dynamodb", "transaction_conflict", 0.25, frozenset({"TransactWriteItems"}))]
    )
    with ThreadPoolExecutor(10) as pool:
        made = list(
            pool.map(lambda i: store.subscribe(TOPIC, f"u-{i}", max_subscribers=limit), range(30))
        )
        assert all(m is not None and m.user_id == f"u-{i}" for i, m in enumerate(made))
        # Conflicts did happen.
        assert fault_proxy.stats().get("transaction_conflict:TransactWriteItems", 0) > 0
        assert store.counts.total(TOPIC) == 30 == sum(count_items(stack).values())
        gone = list(pool.map(lambda i: store.unsubscribe(TOPIC, f"u-{i}"), range(12)))
    fault_proxy.set_rules([])
    assert gone == [True] * 12
    assert store.counts.total(TOPIC) == 18
