"""A rule write that DynamoDB cancels under load (throttling, a conflicting transaction)
is an error to retry, not a concurrent change of the rule nor an evaluation already
recorded: only a failed condition says those."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from alerting.rule_store import RuleConflict, RuleStore
from alerting.rules import RuleIn
from core.aws import errors as aws_errors
from core.aws.clients import AwsClients
from core.platform.settings import Settings
from localstack.faults import FaultProxy, FaultRule
from tests.conftest import Stack

BODY = RuleIn.model_validate(
    {
        "name": "Failed pipelines",
        "schedule": "*/5 * * * *",
        "source": {"kind": "sql", "datasource": "warehouse", "query": "SELECT 1"},
        "condition": {"kind": "any_rows"},
        "recipients": {"users": ["oncall"]},
    }
)
RUN = "2030-01-01T00:00:00+00:00"
EVALUATION: dict[str, Any] = {"outcome": "ok"}


def stores(stack: Stack, faulty_settings: Settings) -> tuple[RuleStore, RuleStore]:
    """The rule store as it is, and the same store reached through the fault proxy."""
    shards = stack.settings.scheduler_shards
    faulty = AwsClients(faulty_settings)
    return (
        RuleStore(stack.clients.dynamodb, stack.clients.names.table, shards),
        RuleStore(faulty.dynamodb, faulty.names.table, shards),
    )


@pytest.mark.parametrize("kind", ["transaction_conflict", "transaction_throttled"])
def test_a_cancelled_rule_write_is_retried_not_called_a_conflict(
    stack: Stack, fault_proxy: FaultProxy, faulty_settings: Settings, kind: str
) -> None:
    plain, faulty = stores(stack, faulty_settings)
    plain.put("r1", BODY)
    fault_proxy.set_rules([FaultRule("dynamodb", kind, 1.0)])
    for write in (lambda: faulty.put("r1", BODY), lambda: faulty.delete("r1")):
        with pytest.raises(ClientError) as caught:  # not RuleConflict
            write()
        assert aws_errors.is_retryable(caught.value)
    fault_proxy.set_rules([])
    rule = plain.get("r1")
    assert rule is not None and rule.version == 1  # nothing was written


def test_a_cancelled_evaluation_is_not_taken_for_one_recorded(
    stack: Stack, fault_proxy: FaultProxy, faulty_settings: Settings
) -> None:
    plain, faulty = stores(stack, faulty_settings)
    fault_proxy.set_rules([FaultRule("dynamodb", "transaction_throttled", 1.0)])
    with pytest.raises(ClientError):
        faulty.record("r1", RUN, EVALUATION, {"seen": 1}, 0)
    assert not plain.evaluation_exists("r1", RUN)
    fault_proxy.set_rules([])
    assert faulty.record("r1", RUN, EVALUATION, {"seen": 1}, 0)  # the retry records it
    assert not plain.record("r1", RUN, EVALUATION, {"seen": 2}, 1)  # now it is refused
    assert plain.state("r1")[:2] == ({"seen": 1}, 1)


class StaleReads(RuleStore):
    """A rule store whose read of the rule was taken before another writer changed it."""

    def __init__(self, store: RuleStore, snapshot: dict[str, Any]) -> None:
        super().__init__(store._db, store._table, store.shards)
        self._snapshot = snapshot

    def get_item(self, rule_id: str) -> dict[str, Any] | None:
        return self._snapshot


def test_a_rule_changed_since_it_was_read_is_a_conflict(
    stack: Stack, faulty_settings: Settings
) -> None:
    plain, _ = stores(stack, faulty_settings)
    plain.put("r2", BODY)
    snapshot = plain.get_item("r2")
    assert snapshot is not None
    plain.put("r2", BODY)  # version 2, written by someone else meanwhile
    stale = StaleReads(plain, snapshot)
    with pytest.raises(RuleConflict):
        stale.put("r2", BODY)
    with pytest.raises(RuleConflict):
        stale.delete("r2")
    rule = plain.get("r2")
    assert rule is not None and rule.version == 2
