"""Digests' settings (`core.digests`, `listeners/digesting.py`): one field group of
`Settings`."""

from __future__ import annotations

from pydantic import BaseModel, Field


class DigestSettings(BaseModel):
    """Fields of `Settings` (`HERALD_<NAME>`)."""

    digest_type_defaults: bool = Field(
        default=True,
        description="Digest like, comment and follow events by their catalogue digests "
        "(the first of a burst at once, the rest of the window as one notification); an "
        "event's own `digest` applies either way.",
    )
