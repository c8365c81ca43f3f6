"""Due work's settings (deferred notifications, delayed events: `core.timing`, the due
sender): one field group of `Settings`."""

from __future__ import annotations

from pydantic import BaseModel, Field


class TimingSettings(BaseModel):
    """Fields of `Settings` (`HERALD_<NAME>`)."""

    due_shards: int = Field(
        default=2,
        ge=1,
        le=256,
        description="Partitions per minute of due work (deferred notifications, delayed "
        "events): spreads a busy minute's writes; an idle due sender reads each once a pass.",
    )
    due_tick_seconds: float = Field(
        default=1.0, gt=0, description="Pause between the due sender's passes while busy."
    )
    due_idle_max_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Longest pause of a due sender whose passes find nothing due (it doubles "
        "from the tick, cut at the next due time it knows): the most work scheduled "
        "meanwhile for a sooner time can be late.",
    )
    due_lease_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A due sender holds a claimed shard this long, renewed between chunks; "
        "a dead sender's shard is taken over after it.",
    )
    due_handler_threads: int = Field(
        default=16,
        ge=1,
        le=128,
        description="Due items one sender hands to their handlers at once.",
    )
    due_retry_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A due item whose handler failed is tried again this much later "
        "(doubling per failure, at most an hour).",
    )
