"""What a new user asks first: which event types exist, which users and topics there are."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from core.catalogue.event_types import Category, Lane, Priority, VariableType


class EventTypeOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "comment",
                    "category": "activity",
                    "default_priority": "normal",
                    "lane": "normal",
                    "summary": "Someone commented",
                    "default_channels": ["push", "email"],
                    "variables": {"actor": "string", "post": "string", "text": "string"},
                }
            ]
        }
    )

    type: str
    category: Category
    default_priority: Priority = Field(description="Used when the event names no priority.")
    lane: Lane = Field(description="critical events travel on their own queues.")
    summary: str
    default_channels: list[str] = Field(
        description="The category's channels, in order, for users without preferences."
    )
    variables: dict[str, VariableType] = Field(
        description="Keys `data` must hold, each with its JSON type."
    )


class EventTypeList(BaseModel):
    items: list[EventTypeOut] = Field(description="The whole catalogue (it is small).")


class UserSummary(BaseModel):
    user_id: str
    created_at: str | None = None
    updated_at: str | None = None


class UserPage(BaseModel):
    items: list[UserSummary]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


class TopicSummary(BaseModel):
    topic: str
    subscribers: int = Field(description="Subscribers now (a topic stays listed at 0).")


class TopicPage(BaseModel):
    items: list[TopicSummary]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )
