"""The one place the ledger's stores are built and composed.

Each store has one job and is handed the collaborators it needs; a process takes the
`Ledger` (or the few stores it uses) from here instead of building its own, so two stores
of one process always share one record writer and one tally.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.ledger.event_reads import EventReads
from core.ledger.event_status import EventStatusChanges
from core.ledger.event_tally import EventTally
from core.ledger.event_writes import EventWrites
from core.ledger.notification_records import RecordWrites
from core.ledger.outcome_records import OutcomeRecords
from core.ledger.receipts import ReceiptLedger
from core.ledger.record_creation import RecordCreation
from core.ledger.record_transitions import RecordTransitions
from core.ledger.settlement import Settlement
from core.ledger.shard_layout import DEFAULT_LAYOUT, ShardLayout
from core.ledger.stale_events import StaleEvents


@dataclass(frozen=True)
class Ledger:
    """Every store of the events and notifications of one table."""

    event_writes: EventWrites
    event_reads: EventReads
    event_status: EventStatusChanges
    stale_events: StaleEvents
    records: RecordWrites
    tally: EventTally
    creation: RecordCreation
    transitions: RecordTransitions
    outcomes: OutcomeRecords
    settlement: Settlement
    receipts: ReceiptLedger
    layout: ShardLayout = DEFAULT_LAYOUT


def build_ledger(
    dynamodb: Any, table: str, retention_days: int = 30, layout: ShardLayout = DEFAULT_LAYOUT
) -> Ledger:
    """The stores of `table`, composed: items written now expire after `retention_days`;
    spread keys follow `layout` (`ShardLayout.of(settings)`)."""
    records = RecordWrites(dynamodb, table, retention_days)
    tally = EventTally(dynamodb, table, retention_days)
    status = EventStatusChanges(dynamodb, table, layout)
    stale = StaleEvents(dynamodb, table, layout)
    return Ledger(
        event_writes=EventWrites(dynamodb, table, retention_days, layout),
        event_reads=EventReads(dynamodb, table, tally, retention_days, layout),
        event_status=status,
        stale_events=stale,
        records=records,
        tally=tally,
        creation=RecordCreation(table, records, tally, layout),
        transitions=RecordTransitions(dynamodb, table, records),
        outcomes=OutcomeRecords(records, tally),
        settlement=Settlement(dynamodb, table, tally=tally, status=status, stale=stale),
        receipts=ReceiptLedger(dynamodb, table),
        layout=layout,
    )
