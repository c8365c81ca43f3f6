"""How many shards each spread key of the table has, from the notification rate it must
carry (`HERALD_TARGET_NOTIFICATIONS_PER_SECOND`).

DynamoDB throttles one partition key at about 1,000 write units a second. A key family that
takes `u` write units per notification across all its shards, at `rate` notifications a
second, keeps each shard at 30% of that limit with

    shards = ceil(rate x u / (0.30 x 1,000))

`u` is the worst workload's, measured by the capacity bench (docs/benchmarks.md): one
notification per event for the event's indexes, one large topic for its records; with room
for the uneven spread of a hash over keys (`SPREAD`: the hottest of the status index's 16
shards took 1.44 times their mean in the bench's steady workload; a fan-out's thousands of
recipients spread evenly over its record partitions). A topic's tally takes no outcomes on
shard 0, so the formula counts its other shards, and shard 0 comes on top. The counts that
served 1,000 notifications a second are kept as floors, so the default layout is the one
every table already has.

Changing the layout of a live table: writers use the new counts at once; items written
under the old ones keep their keys. Shard keys are numbered from 0 whatever the count, so a
reader that reads shards 0 .. max(old, new) - 1 covers both layouts
(`HERALD_PREVIOUS_TARGET_NOTIFICATIONS_PER_SECOND` names the old rate until its items have
aged out). A topic's record and tally shards ride on its messages and its tally, so each
event keeps the layout it was routed with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

# Of a partition's 1,000 write units a second, the share one shard may take at the target.
PARTITION_WCU = 1000
HEADROOM = 0.30
# How much more than the mean the hottest of an event-hashed family's shards may take.
SPREAD = 1.5
# Write units per notification on each family (all its shards together), worst workload,
# with room for the spread.
UNITS = {
    # Listing indexes by day, type, tenant: one entry per event, written once at accept;
    # an event of one notification puts one unit per notification on each.
    "listing": 1.0 * SPREAD,
    # Status index: put at accept, rewritten when routed, deleted when settled.
    "status": 3.0 * SPREAD,
    # A topic's records: created (2, transactional), claimed (2) and recorded (2), plus
    # growth: 6.3 measured on the 100,000-subscriber topic, its hottest partition 1.07
    # times the mean; 7 with room.
    "records": 7.0,
    # A topic's tally: one transactional counter update (2 units) per outcome transaction
    # of up to 10 notifications (0.28 measured), and the creation counts of every chunk
    # but a page's first (0.02), on its outcome shards, the shards but shard 0
    # (`core.ledger.event_tally.tally_shard`). Their shard is picked per transaction, not
    # per recipient, so a thousand notifications' hundred transactions leave the hottest
    # of 7 shards at up to 1.4 times their mean in the bench; 1.75 leaves room.
    "tally": 0.30 * 1.75,
}
# The counts of the layout for 1,000 notifications a second (and the floors).
FLOORS = {"listing": 8, "status": 16, "records": 32, "tally": 8}


def shards_for(rate: int, units: float, floor: int) -> int:
    """ceil(rate x units / (30% of 1,000)), at least `floor`."""
    return max(floor, math.ceil(rate * units / (HEADROOM * PARTITION_WCU)))


def tally_shards_for(rate: int) -> int:
    """A tally's outcome shards from the formula, plus shard 0, which takes no outcomes;
    at least the floor."""
    return max(FLOORS["tally"], 1 + shards_for(rate, UNITS["tally"], 1))


class _RateSettings(Protocol):
    target_notifications_per_second: int
    previous_target_notifications_per_second: int | None


@dataclass(frozen=True)
class ShardLayout:
    """Shard counts writers use now, and the largest each reader must cover (`*_read`:
    this layout's or a previous one's, while its items may still be read)."""

    listing: int = FLOORS["listing"]
    status: int = FLOORS["status"]
    records: int = FLOORS["records"]
    tally: int = FLOORS["tally"]
    listing_read: int = FLOORS["listing"]
    status_read: int = FLOORS["status"]

    @classmethod
    def for_rate(cls, rate: int, previous: int | None = None) -> ShardLayout:
        listing = shards_for(rate, UNITS["listing"], FLOORS["listing"])
        status = shards_for(rate, UNITS["status"], FLOORS["status"])
        old = cls.for_rate(previous) if previous is not None else None
        return cls(
            listing=listing,
            status=status,
            records=shards_for(rate, UNITS["records"], FLOORS["records"]),
            tally=tally_shards_for(rate),
            listing_read=max(listing, old.listing if old else 0),
            status_read=max(status, old.status if old else 0),
        )

    @classmethod
    def of(cls, settings: _RateSettings) -> ShardLayout:
        """The layout `settings` declare (Settings' target and previous rates)."""
        return cls.for_rate(
            settings.target_notifications_per_second,
            settings.previous_target_notifications_per_second,
        )


DEFAULT_LAYOUT = ShardLayout()
