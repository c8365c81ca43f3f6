"""Digested notifications under the AWS-faults scenario: about 15% of DynamoDB writes, SQS
batch writes and SNS publishes fail while likes are absorbed, digests fill up (closed by
the router at max_items) or end their window (closed by the due sender). Every like ends
DIGESTED, each user's likes make exactly one digest, and each digest is sent once per
channel: 0 lost, 0 duplicated, 0 stuck."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import httpx

from tests.chaos.harness import ChaosStack
from tests.chaos.scale import Scale
from tests.chaos.test_chaos import TWO_CHANNELS, assert_clean, settle_and_tally
from tests.chaos.workload import Posted, User, api_client, create_users, post_event
from tests.support import wait_until

LIKES_PER_FULL_DIGEST = 3
FULL = {"window": "10m", "key": "post", "max_items": LIKES_PER_FULL_DIGEST}
WINDOWED = {"window": "1m", "key": "post"}  # two likes, closed when the minute ends


def post_likes(
    api: httpx.Client, posted: Posted, user: User, count: int, digest: dict[str, Any]
) -> list[str]:
    """Likes of one post; a digested like expects no notification of its own."""
    ids = []
    for i in range(count):
        body = {
            "type": "like",
            "user_id": user.user_id,
            "data": {"actor": f"fan-{i}", "post": "p-1"},
            "digest": digest,
        }
        event_id = post_event(api, posted, body, [], TWO_CHANNELS)
        assert event_id is not None, posted.rejected
        ids.append(event_id)
    return ids


def digest_of(api: httpx.Client, event_id: str) -> str | None:
    found = api.get(f"/events/{event_id}").json()
    return found.get("digest_event_id") if found.get("status") == "DIGESTED" else None


def test_digests_under_aws_faults(chaos: ChaosStack, scale: Scale) -> None:
    from localstack.faults import aws_under_load

    posted = Posted()
    full_users = max(4, scale.aws_fault_events // 8)
    with api_client(chaos.api_url) as api:
        windowed = 2  # digests closed by their window: the due sender's close
        users = create_users(api, "digest", full_users + windowed, TWO_CHANNELS)
        chaos.set_faults([r.to_dict() for r in aws_under_load(0.15, hold_seconds=4.0)])
        likes: dict[str, list[str]] = {}
        for user in users[:full_users]:
            likes[user.user_id] = post_likes(api, posted, user, LIKES_PER_FULL_DIGEST, FULL)
        for user in users[full_users:]:
            likes[user.user_id] = post_likes(api, posted, user, 2, WINDOWED)

        digests: dict[str, set[str]] = defaultdict(set)

        def all_digested() -> bool:
            for user_id, event_ids in likes.items():
                found = {digest_of(api, e) for e in event_ids}
                if None in found:
                    return False
                digests[user_id] = {d for d in found if d}
            return True

        assert wait_until(all_digested, timeout=scale.settle_seconds, interval=1), "a like stuck"
        fired = chaos.fault_stats()
        chaos.set_faults([])
        # each user's likes made one digest, whose notifications are what must arrive
        assert {u: len(d) for u, d in digests.items()} == {u: 1 for u in likes}
        for user_id, (digest_id,) in digests.items():
            posted.accept(digest_id, [f"{digest_id}:{c}:{user_id}" for c in TWO_CHANNELS])

        def all_sent() -> bool:  # the windowed ones wait for their minute and the due sender
            found = [api.get(f"/events/{d}") for ids in digests.values() for d in ids]
            return all(r.status_code == 200 and r.json()["status"] == "SUCCESS" for r in found)

        # A windowed digest waits its minute, then the due sender's next pass (an idle one
        # sleeps up to HERALD_DUE_IDLE_MAX_SECONDS): give it that beyond the settle time.
        settled = wait_until(all_sent, timeout=scale.settle_seconds + 120, interval=1)
        statuses = {
            d: api.get(f"/events/{d}").json().get("status") for ids in digests.values() for d in ids
        }
        assert settled, f"a digest stuck: {statuses}"
    outcome = settle_and_tally(chaos, scale, "AWS 15% faults, digested likes", posted)
    outcome.notes.append(
        f"{sum(len(ids) for ids in likes.values())} likes in {len(digests)} digests; "
        f"{sum(fired.values())} AWS faults injected"
    )
    assert sum(fired.values()) > 0, "no fault was injected"
    assert_clean(chaos, outcome, posted)
    assert outcome.unsettled_events == [], outcome.unsettled_events[:10]
    assert outcome.duplicates == {}, outcome.duplicates
    assert outcome.failed == 0, "a fault turned into a failed notification"
    assert outcome.sent == 2 * len(likes)
    # nothing else reached a provider for these users: no second digest, no single like
    wanted = {n for ids in posted.expected.values() for n in ids}
    recipients = {f":{u}" for u in likes}
    stray = [
        m["notification_id"]
        for m in chaos.sandbox("GET", "/sandbox/messages")
        if any(str(m.get("notification_id", "")).endswith(r) for r in recipients)
        and m["notification_id"] not in wanted
    ]
    assert stray == []
