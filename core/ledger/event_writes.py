"""Recording events: the durable outbox behind every 202.

An event is recorded once, by a conditional put of its id; a batch of events shares
transactions, and a write whose answer was lost is told apart from someone else's by the
call's `accept_token`, read back.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from core.aws import dynamo
from core.aws import errors as aws_errors
from core.aws.dynamo import TRANSACT_ROUNDS, item_bytes, transact_chunks
from core.catalogue.models import Event, EventRecord, EventStatus
from core.ledger.event_items import EventExists, event_items_by_pk, event_to_item, item_to_event
from core.ledger.shard_layout import DEFAULT_LAYOUT, ShardLayout


def _same_write(stored: dict[str, Any], item: dict[str, Any]) -> bool:
    token = item.get("accept_token")
    return token is not None and stored.get("accept_token") == token


def _retryable(outcome: EventExists | Exception | None) -> bool:
    return (
        isinstance(outcome, Exception)
        and not isinstance(outcome, EventExists)
        and (aws_errors.is_retryable(outcome))
    )


class EventWrites:
    """Conditional puts of new event items."""

    def __init__(
        self,
        dynamodb: Any,
        table: str,
        retention_days: int = 30,
        layout: ShardLayout = DEFAULT_LAYOUT,
    ) -> None:
        self._layout = layout
        self._db = dynamodb
        self._table = table
        self._retention_days = retention_days

    def new_record(self, event: Event) -> EventRecord:
        now = event.created_at
        return EventRecord(
            **event.model_dump(),
            status=EventStatus.START,
            payload_hash=event.fingerprint(),
            updated_at=now,
            last_published_at=now,
        )

    def _put_item(self, item: dict[str, Any]) -> None:
        try:
            self._db.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression="attribute_not_exists(PK)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if aws_errors.is_refusal(exc) and "Item" in exc.response:
                if _same_write(exc.response["Item"], item):
                    return  # a retry of our own put whose first answer was lost
                raise EventExists(item_to_event(exc.response["Item"])) from exc
            raise

    def put_new_batch(self, records: Sequence[EventRecord]) -> list[EventExists | Exception | None]:
        """Record several events with as few calls as their conditions allow; one outcome
        per record, in order: None (recorded), EventExists (the id was taken; the stored
        record inside) or the error that stopped it.

        Conditional puts cannot go in BatchWriteItem, so several go in one
        TransactWriteItems (at most `TRANSACT_MAX` items and `TRANSACT_MAX_BYTES`). A
        transaction is all or nothing: when one put finds its id taken, DynamoDB cancels
        the rest and says which one, and the rest go again without it. A lone record is a
        plain PutItem, which also costs one write unit where a transaction costs two.
        The same id twice in the batch is recorded once; the repeat is told it exists.

        Every item carries this call's `accept_token`. After an error that may hide an
        applied write (a 500, a lost answer) the items are read back: one holding our token
        was recorded by us, one holding another token was recorded by someone else (a
        concurrent repeat: EventExists), and a missing one is written again. Throttling and
        conflicts are tried again too, with backoff, for TRANSACT_ROUNDS rounds; only then
        is an error the outcome (the API answers 503: nothing was accepted).
        """
        outcomes: list[EventExists | Exception | None] = [None] * len(records)
        first: dict[str, int] = {}
        for index, record in enumerate(records):
            first.setdefault(record.event_id, index)
        pending = sorted(first.values())
        token = uuid.uuid4().hex
        items = {i: event_to_item(records[i], self._retention_days, self._layout) for i in pending}
        for item in items.values():
            item["accept_token"] = {"S": token}
        for round_ in range(TRANSACT_ROUNDS):
            if not pending:
                break
            if round_:
                time.sleep(aws_errors.jittered(round_ - 1, 0.05, 1.0))
            retry: list[int] = []
            for chunk in transact_chunks(pending, lambda i: item_bytes(items[i])):
                if len(chunk) == 1:
                    outcomes[chunk[0]] = self._put_one(items[chunk[0]])
                    continue
                retry += self._put_transaction(chunk, items, outcomes)
            failed = [i for i in pending if i not in retry and _retryable(outcomes[i])]
            retry += self._read_back(failed, items, token, outcomes)
            pending = sorted(retry)
        for index in pending:  # still conflicting after every round
            if outcomes[index] is None:
                outcomes[index] = ClientError(
                    {"Error": {"Code": "TransactionConflict", "Message": "gave up retrying"}},
                    "TransactWriteItems",
                )
        for index, record in enumerate(records):
            original = first[record.event_id]
            if index != original:
                outcome = outcomes[original]
                outcomes[index] = EventExists(records[original]) if outcome is None else outcome
        return outcomes

    def _read_back(
        self,
        indexes: list[int],
        items: dict[int, dict[str, Any]],
        token: str,
        outcomes: list[EventExists | Exception | None],
    ) -> list[int]:
        """Settle failed puts from what is stored; returns those to write again."""
        if not indexes:
            return []
        keys = {
            items[i][dynamo.PK]["S"]: i
            for i in indexes
            if any(aws_errors.may_have_applied(e) for e in [outcomes[i]] if e is not None)
        }
        stored: dict[str, dict[str, Any]] = {}
        if keys:
            try:
                stored = self._get_events(list(keys))
            except (ClientError, BotoCoreError):
                return indexes  # cannot tell yet: the next round writes (or reads) again
        again: list[int] = []
        for i in indexes:
            found = stored.get(items[i][dynamo.PK]["S"])
            if found is None:
                again.append(i)
            elif found.get("accept_token", {}).get("S") == token:
                outcomes[i] = None  # our write went through; only its answer was lost
            else:
                outcomes[i] = EventExists(item_to_event(found))
        return again

    def _get_events(self, pks: list[str]) -> dict[str, dict[str, Any]]:
        """Event items by PK, read consistently."""
        return event_items_by_pk(self._db, self._table, pks, consistent=True)

    def _put_one(self, item: dict[str, Any]) -> EventExists | Exception | None:
        try:
            self._put_item(item)
        except EventExists as exc:
            return exc
        except (ClientError, BotoCoreError) as exc:
            return exc
        return None

    def _put_transaction(
        self,
        chunk: list[int],
        items: dict[int, dict[str, Any]],
        outcomes: list[EventExists | Exception | None],
    ) -> list[int]:
        """One transaction of conditional puts; sets the outcomes it settles and returns the
        indexes to try again (cancelled through no fault of their own)."""
        for i in chunk:
            outcomes[i] = None  # unless this call says otherwise
        try:
            self._db.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": items[i],
                            "ConditionExpression": "attribute_not_exists(PK)",
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                        }
                    }
                    for i in chunk
                ]
            )
        except ClientError as exc:
            codes = aws_errors.cancellation_reasons(exc)
            if len(codes) != len(chunk):
                for i in chunk:
                    outcomes[i] = exc
                return []
            reasons = exc.response["CancellationReasons"]
            retry: list[int] = []
            for i, reason, reason_code in zip(chunk, reasons, codes, strict=True):
                if reason_code == aws_errors.REFUSED_REASON and "Item" in reason:
                    if _same_write(reason["Item"], items[i]):
                        outcomes[i] = None  # applied by our earlier try
                    else:
                        outcomes[i] = EventExists(item_to_event(reason["Item"]))
                elif reason_code in ("None", "TransactionConflict", aws_errors.REFUSED_REASON):
                    retry.append(i)  # a put that would have gone in, or met a concurrent write
                else:
                    outcomes[i] = ClientError(
                        {"Error": {"Code": str(reason_code), "Message": reason.get("Message", "")}},
                        "TransactWriteItems",
                    )
            return retry
        except BotoCoreError as exc:
            for i in chunk:
                outcomes[i] = exc
        return []
