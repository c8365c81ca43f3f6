"""Work before authentication is bounded: key length, refused keys, failures per client,
a valid key's cache entry, path ids and the open health check."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.auth import Authenticator
from api.main import create_app
from core.security.api_keys import ApiKey, ApiKeyStore
from tests.conftest import AUTH, TEST_API_KEY, Stack
from tests.support import aws_calls


class CountingStore:
    """The real key store, counting the lookups that reach DynamoDB."""

    def __init__(self, store: ApiKeyStore) -> None:
        self.store = store
        self.lookups = 0

    def verify(self, token: str) -> ApiKey | None:
        self.lookups += 1
        return self.store.verify(token)

    def revoke(self, key_id: str) -> bool:
        return self.store.revoke(key_id)

    def list_keys(self) -> list[ApiKey]:
        return self.store.list_keys()

    def owner_of(self, key_id: str) -> str | None:
        return self.store.owner_of(key_id)


@pytest.fixture
def keys(stack: Stack) -> ApiKeyStore:
    return ApiKeyStore(stack.clients.dynamodb, stack.clients.names.table)


@pytest.fixture
def counting(keys: ApiKeyStore) -> CountingStore:
    return CountingStore(keys)


def authenticator(store: CountingStore, **options: Any) -> Authenticator:
    return Authenticator(store, rate=1000, burst=1000, **options)


def test_overlong_and_malformed_keys_are_refused_without_a_lookup(
    counting: CountingStore,
) -> None:
    auth = authenticator(counting)
    for token in ("hk_" + "a" * 3000 + "_secret", "hk_id_" + "s" * 300, "hk__x", "hk_a.b_c"):
        assert auth.verify(token) is None
    assert counting.lookups == 0


def test_a_refused_key_costs_one_lookup_per_cache_period(counting: CountingStore) -> None:
    auth = authenticator(counting)
    for _ in range(5):
        assert auth.verify("hk_nosuchkey_0123456789") is None
    assert counting.lookups == 1


def test_junk_keys_do_not_push_a_valid_key_out_of_the_cache(counting: CountingStore) -> None:
    auth = authenticator(counting, refused_max=50)
    assert auth.verify(TEST_API_KEY) is not None
    for i in range(200):
        assert auth.verify(f"hk_junk{i}_secretsecret") is None
    before = counting.lookups
    assert auth.verify(TEST_API_KEY) is not None
    assert counting.lookups == before  # still cached: no read


@pytest.fixture
def strict(stack: Stack) -> Iterator[TestClient]:
    settings = stack.settings.model_copy(
        update={"auth_failure_burst": 3, "auth_failure_rate_per_second": 0.01}
    )
    with TestClient(create_app(settings, stack.clients)) as client:
        yield client


def test_failed_authentications_are_limited_per_client_address(strict: TestClient) -> None:
    assert strict.get("/events", headers=AUTH).status_code == 200  # verified and cached
    codes = [
        strict.get("/events", headers={"X-API-Key": f"hk_guess{i}_secret"}).status_code
        for i in range(5)
    ]
    assert codes[:3] == [401, 401, 401]
    assert codes[3:] == [429, 429]
    limited = strict.get("/events", headers={"X-API-Key": "hk_guess9_secret"})
    assert int(limited.headers["Retry-After"]) >= 1
    assert strict.get("/events", headers=AUTH).status_code == 200  # a verified key goes on


def test_a_key_over_two_kilobytes_is_401_not_503(client: TestClient) -> None:
    resp = client.get("/events", headers={"X-API-Key": "hk_" + "x" * 3000 + "_secret"})
    assert resp.status_code == 401


@pytest.mark.parametrize(
    "path",
    [
        "/events/" + "e" * 3000,
        "/users/" + "u" * 3000,
        "/topics/" + "t" * 3000 + "/subscribers",
        "/dlq/" + "q" * 3000 + "/messages",
    ],
)
def test_overlong_path_ids_are_refused_before_any_lookup(
    client: TestClient, stack: Stack, path: str
) -> None:
    """DynamoDB refuses keys over 2 KB with a ValidationException (a 503 in Herald);
    such an id must be a 4xx without reaching it."""
    assert client.get("/events", params={"limit": 1}).status_code == 200  # key now cached
    with aws_calls(stack.clients.dynamodb) as calls:
        assert client.get(path).status_code in (404, 422)
    assert calls == []


def test_overlong_notification_ids_in_receipts_are_not_looked_up(stack: Stack) -> None:
    from api.routes.webhooks import _record
    from core.catalogue.models import NotificationStatus
    from core.ledger.receipts import Outcome, ReceiptLedger

    ledger = ReceiptLedger(stack.clients.dynamodb, stack.clients.names.table)
    long_id = "e" * 3000 + ":sms:u-1"
    receipt = ("twilio", "SM1:delivered", 60.0)
    with aws_calls(stack.clients.dynamodb) as calls:
        outcome = _record(ledger, receipt, long_id, NotificationStatus.DELIVERED, None)
    assert outcome is Outcome.UNCHANGED
    assert calls == []


def test_health_is_served_from_a_cached_check(stack: Stack) -> None:
    calls: list[str] = []
    stack.clients.dynamodb.meta.events.register(
        "before-call.dynamodb.DescribeTable", lambda **_: calls.append("DescribeTable")
    )
    stack.clients.sns.meta.events.register(
        "before-call.sns.GetTopicAttributes", lambda **_: calls.append("GetTopicAttributes")
    )
    settings = stack.settings.model_copy(update={"health_cache_seconds": 3600})
    with TestClient(create_app(settings, stack.clients)) as client:
        for _ in range(20):
            resp = client.get("/health")
            assert resp.status_code == 200 and resp.json() == {"status": "ok"}
    assert calls == ["DescribeTable", "GetTopicAttributes"]


def test_health_details_need_the_admin_scope(stack: Stack, keys: ApiKeyStore) -> None:
    reader = {"X-API-Key": keys.create("reader", ("events:read",))[1]}
    with TestClient(create_app(stack.settings, stack.clients)) as client:
        assert "checks" not in client.get("/health").json()
        assert client.get("/health/details").status_code == 401
        assert client.get("/health/details", headers=reader).status_code == 403
        details = client.get("/health/details", headers=AUTH)
        assert details.json()["checks"] == {"dynamodb": "ok", "sns": "ok"}


_GUESSES = iter(range(1_000_000))


def _guesses(client: TestClient, forwarded_for: str, count: int) -> list[int]:
    """`count` new junk keys (a refused key is answered from memory, not counted again)."""
    return [
        client.get(
            "/events",
            headers={
                "X-API-Key": f"hk_xff{next(_GUESSES)}_secret",
                "X-Forwarded-For": forwarded_for,
            },
        ).status_code
        for _ in range(count)
    ]


def test_behind_a_trusted_proxy_failures_are_counted_per_forwarded_client(stack: Stack) -> None:
    settings = stack.settings.model_copy(
        update={
            "auth_failure_burst": 2,
            "auth_failure_rate_per_second": 0.01,
            "trusted_proxies": "10.0.0.0/8",
        }
    )
    app = create_app(settings, stack.clients)
    with TestClient(app, client=("10.0.0.5", 5000)) as balancer:
        # one client guessing behind the balancer is limited ...
        assert _guesses(balancer, "203.0.113.9", 3) == [401, 401, 429]
        # ... whatever it writes to the left of what the balancer appended ...
        assert _guesses(balancer, "198.51.100.1, 203.0.113.9", 1) == [429]
        # ... and another client behind the same balancer is not
        assert _guesses(balancer, "203.0.113.10", 1) == [401]
        # a chain of trusted proxies is walked past to the client
        assert _guesses(balancer, "203.0.113.11, 10.1.2.3", 2) == [401, 401]
        assert _guesses(balancer, "203.0.113.11, 10.9.9.9", 1) == [429]


def test_an_untrusted_peer_cannot_choose_its_address_with_the_header(stack: Stack) -> None:
    settings = stack.settings.model_copy(
        update={
            "auth_failure_burst": 2,
            "auth_failure_rate_per_second": 0.01,
            "trusted_proxies": "10.0.0.0/8",
        }
    )
    with TestClient(create_app(settings, stack.clients), client=("192.0.2.7", 5000)) as direct:
        codes = [
            direct.get(
                "/events",
                headers={"X-API-Key": f"hk_guess{i}_secret", "X-Forwarded-For": f"203.0.113.{i}"},
            ).status_code
            for i in range(3)
        ]
        assert codes == [401, 401, 429]


def test_trusted_proxies_must_be_networks(stack: Stack) -> None:
    from pydantic import ValidationError

    from core.platform.settings import Settings

    with pytest.raises(ValidationError, match=r"not a CIDR or an IP address: 'lb\.internal'"):
        Settings(trusted_proxies="10.0.0.0/8, lb.internal")
