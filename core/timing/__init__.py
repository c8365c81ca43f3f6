"""Work that waits for its time: deferred notifications, delayed events (and whatever else
registers a handler, such as digests), kept in DynamoDB in sharded minute buckets and
handed out by the due sender (`listeners/due_sender.py`) once due.

`due_work` is the contract (`DueWork`, `DueStore.schedule` / `unschedule`); `due_claims`
is the due sender's side (walking buckets, leases on shards); `delays` parses what a
client asks for (`send_at`, `delay`); `waiting_events` holds an event's waiting states
(SCHEDULED, the release a cancel races, CANCELLED) and `waiting_records` cancels its
waiting notifications.

May import every package of `core` but `operations` and `resources`.
"""
