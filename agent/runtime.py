"""What every component is handed by the agent process: the narrow, typed runtime.

A component gets this and the typed collaborators it needs (agent/wiring.py builds them);
it never looks another component up by name, and never imports the daemon.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from agent.cloud.outbox import Outbox
from agent.config import AgentConfig
from agent.events import EventBus
from agent.scheduler import Scheduler
from agent.store import Store

T = TypeVar("T")


class Component(Protocol):
    """A part of the agent with a lifetime: the cloud link, hardware, the POS API, ..."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def status(self) -> dict[str, Any]: ...


C = TypeVar("C", bound=Component)


@dataclass(frozen=True)
class ComponentKey(Generic[C]):
    """A typed name for a running component: ``agent.component(HARDWARE)`` is a ``Hardware``
    (the keys are in agent/wiring.py)."""

    name: str
    kind: type[C]


class RunOnLoop(Protocol):
    def __call__(self, func: Callable[[], T], timeout_s: float = ...) -> T: ...


@dataclass(frozen=True)
class Runtime:
    """The agent's shared parts, created before any component and alive until the last stops.

    ``config`` is the live configuration (a reload changes its sections in place);
    ``call_from_thread`` is the only way from an I/O thread into agent state, and
    ``run_on_loop`` waits for the answer.
    """

    config: AgentConfig
    config_path: Path | None
    store: Store
    outbox: Outbox
    events: EventBus
    scheduler: Scheduler
    boot_id: uuid.UUID
    call_from_thread: Callable[..., None]
    run_on_loop: RunOnLoop
    reload_config: Callable[[], dict[str, Any]]

    @property
    def device_id(self) -> str:
        return self.config.device_id
