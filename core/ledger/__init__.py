"""What happened to each event and notification: the event items and their indexes,
listings and publication, the notification records' state machine, their creation, the
event's tally, outcomes and receipts, and settling an event from its records.

May import every package of `core` but `operations`.
"""
