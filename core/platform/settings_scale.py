"""Scale and idleness: the rate the table's layout is sized for, and how far the background
processes back off when there is nothing to do. One field group of `Settings`."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ScaleSettings(BaseModel):
    """Fields of `Settings` (`HERALD_<NAME>`)."""

    target_notifications_per_second: int = Field(
        default=1000,
        ge=1,
        le=1_000_000,
        description="The notification rate the table's shard counts are sized for (every key "
        "at most 30% of its partition's write limit, docs/design.md \"Shards from a target "
        'rate"). The default keeps the layout of 1,000 notifications/s.',
    )
    previous_target_notifications_per_second: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="While the shard layout changes on a live table: the rate the old layout "
        "was sized for. Readers cover both layouts until the old items age out "
        "(HERALD_EVENT_RETENTION_DAYS); unset once they have.",
    )
    reconcile_idle_max_seconds: float = Field(
        default=300.0,
        gt=0,
        description="Longest pause of the reconciler while its passes find nothing stale "
        "(it doubles from HERALD_RECONCILE_INTERVAL_SECONDS; never past "
        "HERALD_RECONCILE_STRANDED_SECONDS).",
    )
