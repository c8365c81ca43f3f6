"""How long a topic's fan-out page may wait for its lane (listeners/fanout_pacing.py): one
field group of `Settings`, beside the pace's own fields in settings.py."""

from __future__ import annotations

from pydantic import BaseModel, Field


class FanoutPacingSettings(BaseModel):
    """Fields of `Settings` (`HERALD_<NAME>`)."""

    fanout_max_wait_seconds: float = Field(
        default=600.0,
        ge=0,
        description="Longest a fan-out page waits, in all, for its channels' queues to drain "
        "below HERALD_FANOUT_MAX_WAITING; then it goes anyway, so a backlog that never "
        "drains slows a topic's fan-out but cannot stall it (0: never waits).",
    )
