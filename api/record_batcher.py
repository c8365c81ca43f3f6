"""Recording from the API: concurrent requests share conditional-put transactions.

Every accepted event needs its own conditional put (the idempotency check), and one
botocore call costs the API more CPU than the whole rest of a request. Requests that
arrive together are therefore recorded together: one TransactWriteItems of up to a hundred
puts (`EventStore.put_new_batch`), or a plain PutItem for a request that arrives alone.
"""

from __future__ import annotations

from api.group_commit import GroupCommit
from core.dynamo import TRANSACT_MAX
from core.event_store import EventExists, EventStore
from core.models import EventRecord


class RecordBatcher:
    def __init__(self, events: EventStore) -> None:
        self._group: GroupCommit[EventRecord, EventExists | Exception | None] = GroupCommit(
            events.put_new_batch, TRANSACT_MAX
        )

    async def record(self, record: EventRecord) -> None:
        """Returns once the event is durable; raises EventExists (with the stored record)
        when its id is taken, or the AWS error that stopped it."""
        await self._group.submit(record)

    async def drain(self) -> None:
        await self._group.drain()
