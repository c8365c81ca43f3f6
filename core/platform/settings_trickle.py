"""Low-rate batching: how long the API and the normal lanes' receivers wait for company,
so that events arriving one at a time share AWS calls as a burst's do. One field group of
`Settings`; see api/group_commit.py and listeners/consumer.py."""

from __future__ import annotations

from pydantic import BaseModel, Field


class TrickleSettings(BaseModel):
    """Fields of `Settings` (`HERALD_<NAME>`)."""

    accept_linger_seconds: float = Field(
        default=0.25,
        ge=0,
        le=1.0,
        description="How long an accepted event waits for others to share its put and publish "
        "when no accept call is in flight and the event before it came within this time (at "
        "10 events/s three share a call; under load a call in flight makes rounds anyway; 0: "
        "never waits).",
    )
    receive_window_seconds: float = Field(
        default=1.0,
        ge=0,
        le=5.0,
        description="After a partial batch from a normal queue, the longest the router and "
        "the workers wait before they receive again, so that a trickle gathers into batches "
        "(less when the rate they see would bring nine tenths of a batch sooner: at 10 "
        "events/s, nine to a batch); the critical queues never wait (0: receive again at "
        "once).",
    )
