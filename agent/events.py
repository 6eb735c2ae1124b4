"""In-process event stream: scans, device status changes, licence and roster changes.

Producers call ``publish`` on the agent loop; each subscriber (a POS WebSocket, a
``kassactl scan --watch``) has its own bounded queue, so a slow reader loses its
oldest events (counted) instead of slowing the agent down.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

DEFAULT_QUEUE_SIZE = 256


@dataclass(frozen=True)
class AgentEvent:
    kind: str  # "scan", "printer.status", "print.job", "drawer", ...
    data: dict[str, Any]
    at: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "at": self.at, **self.data}


class Subscription:
    def __init__(self, bus: EventBus, kinds: frozenset[str] | None, size: int) -> None:
        self._bus = bus
        self.kinds = kinds
        self.queue: asyncio.Queue[AgentEvent] = asyncio.Queue(size)
        self.dropped = 0

    def offer(self, event: AgentEvent) -> None:
        if self.kinds is not None and event.kind not in self.kinds:
            return
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(event)

    async def next(self, timeout_s: float | None = None) -> AgentEvent:
        return await asyncio.wait_for(self.queue.get(), timeout_s)

    def close(self) -> None:
        self._bus.unsubscribe(self)


class EventBus:
    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []
        self.published = 0

    def subscribe(self, kinds: set[str] | None = None, size: int = DEFAULT_QUEUE_SIZE) -> Subscription:
        subscription = Subscription(self, frozenset(kinds) if kinds else None, size)
        self._subscriptions.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)

    def publish(self, event_kind: str, **data: Any) -> AgentEvent:
        event = AgentEvent(event_kind, data)
        self.published += 1
        for subscription in list(self._subscriptions):
            subscription.offer(event)
        return event
