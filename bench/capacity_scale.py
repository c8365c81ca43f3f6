"""The hottest partition key at 10,000 notifications a second, from a capacity run's meters.

A workload measured at the layout of its run (`HERALD_TARGET_NOTIFICATIONS_PER_SECOND`,
1,000 by default) is re-spread over the layout declared for 10,000
(`core.ledger.shard_layout`): each metered key's units per notification times 10,000,
divided by how many times more shards its family has there (a tally's outcome shards:
all but shard 0, which shares the event's key). A key of no sharded family (a user's, an
unsharded event's, a topic event's own key with its tally shard 0) keeps its units per
notification, so it takes ten times the load. Reads spread with the shards only where each
read names one key (a topic's records); the tally's and the indexes' readers read every
shard, so their read load per key does not fall with more shards.

The meters keep each target's hottest keys (`TOP`); a key past them took at most the last
one's units, and is counted at that bound unscaled, so the figure never understates.
"""

from __future__ import annotations

import re
from typing import Any

from core.ledger.shard_layout import ShardLayout

SCALE = 10_000
TOP = 100  # hottest keys per target and unit read from the meters
LIMITS = {"wcu": 1000.0, "rcu": 3000.0}
_RECORDS = re.compile(r"^EVENT#[^#]+#R\d+$")
_TALLY = re.compile(r"^EVENT#[^#]+#T\d+$")
_SHARDED_INDEX = {
    "events_by_day": "listing",
    "events_by_type": "listing",
    "events_by_tenant": "listing",
    "events_by_status": "status",
}


def family(target: str, key: str) -> str | None:
    """The sharded family `key` of `target` belongs to, or None."""
    if target in _SHARDED_INDEX:
        return _SHARDED_INDEX[target]
    if target == "table":
        if _RECORDS.match(key):
            return "records"
        if _TALLY.match(key):
            return "tally"
    return None


def kind(target: str, key: str) -> str:
    """What the report groups `key` under: its sharded family, or for a table key of none
    its leading part (`event` for an event's own key, `user`, `topic`, ...)."""
    name = family(target, key)
    if name is not None:
        return name
    return key.split("#", 1)[0].lower() if target == "table" else target


def keys_of(layout: ShardLayout, name: str) -> int:
    """How many keys of the family take its load under `layout`: a tally's outcomes count
    on its shards but shard 0 (`core.ledger.event_tally.tally_shard`), which is the event's
    own key (of no family here); the other families use every shard."""
    shards = int(getattr(layout, name))
    return max(shards - 1, 1) if name == "tally" else shards


def spread(layout: ShardLayout, scaled: ShardLayout, name: str | None, unit: str) -> float:
    """How many times more keys the family's load spreads over at `scaled`."""
    if name is None or (unit == "rcu" and name != "records"):
        return 1.0
    return float(keys_of(scaled, name)) / float(keys_of(layout, name))


def at_scale(
    targets: dict[str, Any], notifications: int, rate: int, scale: int = SCALE
) -> dict[str, Any]:
    """Per target and unit, the hottest key at `scale` notifications a second (the run was
    made at the layout of `rate`), and over all of them the hottest share of its limit."""
    n = max(notifications, 1)
    measured, scaled = ShardLayout.for_rate(rate), ShardLayout.for_rate(scale)
    out: dict[str, Any] = {"scale": scale, "rate": rate, "targets": {}, "by_kind": {}}
    worst, where = 0.0, ""
    for label, row in targets.items():
        entry: dict[str, Any] = {}
        kinds: dict[str, dict[str, float]] = {}
        for unit in ("wcu", "rcu"):
            ranked = row.get(f"keys_by_{unit}") or []
            best: dict[str, Any] | None = None
            for part in ranked:
                name = family(label, part["key"])
                load = part[unit] / n * scale / spread(measured, scaled, name, unit)
                pct = load / LIMITS[unit] * 100
                shares = kinds.setdefault(kind(label, part["key"]), {})
                shares[unit] = max(shares.get(unit, 0.0), pct)
                if best is None or load > best["per_second"]:
                    best = {"key": part["key"], "per_second": load, "family": name}
            if ranked and len(ranked) >= TOP:  # a key past the list: at most the last one's
                bound = ranked[-1][unit] / n * scale
                if best is None or bound > best["per_second"]:
                    best = {"key": "(past the hottest kept)", "per_second": bound, "family": None}
            if best is None:
                continue
            best["pct_of_limit"] = best["per_second"] / LIMITS[unit] * 100
            entry[unit] = best
            if best["pct_of_limit"] > worst:
                worst, where = best["pct_of_limit"], f"{label} {unit.upper()} {best['key']}"
        out["targets"][label] = entry
        out["by_kind"][label] = kinds  # the hottest kept key's % of its limit, per kind
    out["hottest_pct_of_limit"] = worst
    out["hottest_where"] = where
    out["layout"] = {
        "listing": scaled.listing,
        "status": scaled.status,
        "records": scaled.records,
        "tally": scaled.tally,
    }
    return out
