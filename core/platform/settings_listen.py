"""The real-time rules' settings (the listener of PostgreSQL NOTIFY): one field group of
`Settings`."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ListenSettings(BaseModel):
    """Fields of `Settings` (`HERALD_<NAME>`)."""

    listen_debounce_seconds: float = Field(
        default=0.5,
        ge=0.1,
        le=10,
        description="NOTIFYs on a listening rule's channel within one window of this length "
        "make one run, sent when the window ends: a flooded channel costs a rule at most one "
        "run per window.",
    )
    listen_lease_seconds: float = Field(
        default=30.0,
        ge=3,
        description="A listener holds a data source's connection this long, renewing it every "
        "third of it; a dead listener's data source is taken over after it.",
    )
    listen_rules_refresh_seconds: float = Field(
        default=15.0,
        gt=0,
        description="The listener rereads which rules listen this often: a new or changed "
        "listening rule is listened for within this time.",
    )
    listen_reconnect_max_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Longest pause between attempts to reconnect a lost listening connection "
        "(the pause doubles from half a second).",
    )
