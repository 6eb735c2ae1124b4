"""A component's ``Runtime`` without an agent process: for tests that build one component from
its collaborators (agent/wiring.py does the same in the agent)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from agent import meta
from agent.clock import kernel_clock_synchronized
from agent.cloud.outbox import Outbox
from agent.config import AgentConfig
from agent.events import EventBus
from agent.runtime import Runtime
from agent.scheduler import Scheduler
from agent.store import Store
from broker import contract as kc

T = TypeVar("T")


def _now(func: Callable[..., Any], *args: Any) -> None:
    func(*args)  # no I/O threads here: the caller is the loop


def _run(func: Callable[[], T], timeout_s: float = 30.0) -> T:
    return func()


def runtime_for(config: AgentConfig, store: Store | None = None) -> Runtime:
    """The runtime of ``config``'s store (opened and claimed for the device unless given)."""
    if store is None:
        store = Store.open(config.paths.store_path)
        meta.claim_for_device(store, config.device_id)
    boot_id = kc.uuid7()
    return Runtime(
        config=config,
        config_path=None,
        store=store,
        outbox=Outbox(store, config.device_id, boot_id, kernel_clock_synchronized),
        events=EventBus(),
        scheduler=Scheduler(),
        boot_id=boot_id,
        call_from_thread=_now,
        run_on_loop=_run,
        reload_config=lambda: {"applied": [], "restart_needed": [], "error": None},
    )
