"""AWS resource names, derived from one prefix so two stacks can share an account."""

from __future__ import annotations

from dataclasses import dataclass

from core.catalogue.event_types import CHANNELS, Lane


@dataclass(frozen=True)
class ResourceNames:
    prefix: str

    @property
    def table(self) -> str:
        return f"{self.prefix}-table"

    @property
    def topic(self) -> str:
        return f"{self.prefix}-events"

    def router_queue(self, lane: Lane) -> str:
        return f"{self.prefix}-events-{lane}"

    def channel_queue(self, channel: str, lane: Lane) -> str:
        return f"{self.prefix}-{channel}-{lane}"

    def rules_queue(self, lane: Lane) -> str:
        """Alert rule evaluations due now, from the scheduler to the evaluators."""
        return f"{self.prefix}-rules-{lane}"

    @staticmethod
    def dlq_of(queue: str) -> str:
        return f"{queue}-dlq"

    def work_queues(self) -> list[str]:
        """Every queue that has a DLQ: the two router queues, each channel's two and the
        two rule-evaluation queues."""
        lanes: tuple[Lane, Lane] = ("critical", "normal")
        names = [self.router_queue(lane) for lane in lanes]
        names += [self.channel_queue(c, lane) for c in CHANNELS for lane in lanes]
        names += [self.rules_queue(lane) for lane in lanes]
        return names
