"""The agent process: one asyncio loop owns all state.

Blocking I/O (serial ports, USB, paho's network thread) runs in threads that hand
events to the loop with ``Agent.call_from_thread``; nothing else touches agent
state from another thread. The agent opens the store, makes the ``Runtime`` and has
agent/wiring.py build the components; they start in order and stop in reverse.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from agent import meta
from agent.clock import kernel_clock_synchronized
from agent.cloud.outbox import Outbox
from agent.config import LIVE_RELOADABLE, AgentConfig, ConfigError, load_config
from agent.control.methods import BoundMethod
from agent.control.permissions import Authorizer
from agent.control.server import ControlServer
from agent.events import EventBus
from agent.logbuffer import LogBuffer
from agent.runtime import Component, ComponentKey, Runtime
from agent.scheduler import Scheduler
from agent.sdnotify import Notifier
from agent.store import Store
from agent.version import agent_version
from agent.wiring import wire
from broker import contract as kc
from broker.logs import setup_logging

log = logging.getLogger(__name__)


T = TypeVar("T")
C = TypeVar("C", bound=Component)


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        config_path: Path | None = None,
        *,
        notifier: Notifier | None = None,
        verbose: bool = False,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.notifier = notifier or Notifier()
        self.verbose = verbose
        self.boot_id = kc.uuid7()  # a new id per process: the cloud tells restarts apart
        self.boot_count = 0
        self.started_monotonic = time.monotonic()
        self.started_at = time.time()
        self.state = "starting"
        self.restart_needed: list[str] = []
        self.store: Store | None = None
        self.runtime: Runtime | None = None
        self.scheduler = Scheduler()
        self.events = EventBus()
        self.log_buffer = LogBuffer()
        self.components: list[Component] = []
        self.control_methods: dict[str, BoundMethod] = {}
        self._control: ControlServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested: asyncio.Event | None = None
        self._start_done: asyncio.Event | None = None  # set once the start loop has walked every component

    # --------------------------------------------------------------- lifecycle
    async def run(self, *, handle_signals: bool = True) -> int:
        """Start everything, serve until SIGTERM/SIGINT, stop cleanly. Returns the exit code.

        ``handle_signals=False`` lets tests run an agent in a thread (signals need the main thread).
        """
        self._loop = asyncio.get_running_loop()
        self._stop_requested = asyncio.Event()
        self._start_done = asyncio.Event()
        logging.getLogger().addHandler(self.log_buffer)
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._loop.add_signal_handler(sig, self.request_stop, sig.name)
            self._loop.add_signal_handler(signal.SIGHUP, self.reload_config)
        try:
            await self._start()
        except BaseException:
            self._start_done.set()
            await self._stop()
            raise
        self._start_done.set()
        await self._stop_requested.wait()
        try:
            await asyncio.wait_for(self._stop(), timeout=self.config.lifecycle.shutdown_timeout_s)
        except TimeoutError:
            log.error(
                "clean stop took too long; closing the store and exiting",
                extra={"timeout_s": self.config.lifecycle.shutdown_timeout_s},
            )
            self._close_store()
            return 1
        return 0

    async def _start(self) -> None:
        self.notifier.status("opening store")
        self.store = Store.open(self.config.paths.store_path)
        self.boot_count = meta.claim_for_device(self.store, self.config.device_id)
        if self.notifier.watchdog_interval_s:
            # On the loop itself: a stuck loop stops the pings and systemd restarts us.
            self.scheduler.every(
                "systemd-watchdog", self.notifier.watchdog_interval_s, self.notifier.watchdog, run_now=True
            )
        self.scheduler.start()
        self.runtime = Runtime(
            config=self.config,
            config_path=self.config_path,
            store=self.store,
            outbox=Outbox(self.store, self.config.device_id, self.boot_id, kernel_clock_synchronized),
            events=self.events,
            scheduler=self.scheduler,
            boot_id=self.boot_id,
            call_from_thread=self.call_from_thread,
            run_on_loop=self.run_on_loop,
            reload_config=self.reload_config,
        )
        wired = wire(self.runtime, self)
        self.components = wired.components
        self.control_methods = wired.control_methods
        for component in self.components:
            await component.start()
        self._control = ControlServer(
            self.control_methods,
            self.config.paths.control_socket,
            Authorizer(self.config.control.admin_group, self.config.control.read_group),
        )
        await self._control.start()
        self.state = "running"
        self.notifier.ready(f"running as {self.config.device_id}")
        log.info(
            "agent running",
            extra={
                "device_id": self.config.device_id,
                "boot_id": str(self.boot_id),
                "boot": self.boot_count,
                "version": agent_version(),
            },
        )

    def request_stop(self, reason: str = "requested") -> None:
        """Ask the agent to stop; safe from any thread."""
        if self._loop is not None and not self._in_loop():
            self._loop.call_soon_threadsafe(self.request_stop, reason)
            return
        if self._stop_requested is None or self._stop_requested.is_set():
            return
        log.info("stopping", extra={"reason": reason})
        self.state = "stopping"
        self._stop_requested.set()

    async def _stop(self) -> None:
        self.notifier.stopping()
        if self._control is not None:  # stop taking work first
            await self._control.stop()
        self.scheduler.shutdown()  # no periodic job may start while components wind down
        for component in reversed(self.components):
            try:
                await component.stop()
            except Exception:
                log.exception("component failed to stop cleanly", extra={"component": component.name})
        self._close_store()
        self.notifier.close()
        self.state = "stopped"
        log.info("agent stopped", extra={"device_id": self.config.device_id})
        logging.getLogger().removeHandler(self.log_buffer)

    def _close_store(self) -> None:
        if self.store is not None:
            self.store.close()

    async def add_component(self, component: Component) -> None:
        """Start a component while the agent runs (the cloud link once pairing got a certificate)."""
        assert self._start_done is not None, "components are added only while the agent runs"
        await self._start_done.wait()  # the start loop may still be walking the component list
        if self.state != "running":
            raise RuntimeError(f"component {component.name!r} not started: the agent is {self.state}")
        if any(c.name == component.name for c in self.components):
            raise ValueError(f"component {component.name!r} is already running")
        self.components.append(component)  # listed first, so a stop that begins now stops it too
        try:
            await component.start()
        except BaseException:
            self.components.remove(component)
            raise
        log.info("component started", extra={"component": component.name})

    def component(self, key: ComponentKey[C]) -> C:
        """The running component ``key`` names (``agent.wiring.HARDWARE``, ...), typed."""
        for component in self.components:
            if component.name == key.name and isinstance(component, key.kind):
                return component
        raise LookupError(f"component {key.name!r} is not running")

    # ------------------------------------------------------------------ threads
    def _in_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    def run_on_loop(self, func: Callable[[], T], timeout_s: float = 30.0) -> T:
        """From an I/O thread: run ``func`` on the loop and wait for its result."""
        if self._loop is None or self._in_loop():
            return func()

        async def call() -> T:
            return func()

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(timeout_s)

    def call_from_thread(self, func: Callable[..., Any], *args: Any) -> None:
        """Hand work from an I/O thread to the loop; the only safe way into agent state."""
        if self._loop is None or self._loop.is_closed():
            log.warning(
                "event dropped: the agent loop is not running", extra={"func": getattr(func, "__name__", repr(func))}
            )
            return
        self._loop.call_soon_threadsafe(func, *args)

    # ------------------------------------------------------------------- config
    def reload_config(self) -> dict[str, Any]:
        """SIGHUP: apply what is safe to change live; report what needs a restart."""
        if self.config_path is None:
            return {"applied": [], "restart_needed": [], "error": "agent was started without a config file"}
        try:
            new = load_config(self.config_path)
        except ConfigError as exc:
            log.error("config reload rejected; keeping the running configuration", extra={"problem": str(exc)})
            return {"applied": [], "restart_needed": self.restart_needed, "error": str(exc)}
        old = _flatten(self.config)
        changed = sorted(key for key, value in _flatten(new).items() if old.get(key) != value)
        applied = [k for k in changed if k in LIVE_RELOADABLE]
        needs_restart = [k for k in changed if k not in LIVE_RELOADABLE]
        for key in applied:
            section, name = key.split(".")
            setattr(getattr(self.config, section), name, getattr(getattr(new, section), name))
        if any(k.startswith("log.") for k in applied):
            setup_logging("debug" if self.verbose else self.config.log.level, self.config.log.format)
        self.restart_needed = sorted(set(self.restart_needed) | set(needs_restart))
        log.info(
            "config reloaded",
            extra={"applied": ",".join(applied) or "-", "restart_needed": ",".join(self.restart_needed) or "-"},
        )
        return {"applied": applied, "restart_needed": self.restart_needed, "error": None}

    # ------------------------------------------------------------------- status
    def status(self) -> dict[str, Any]:
        store_info = self.store.info() if self.store is not None and not self.store.closed else None
        return {
            "device_id": self.config.device_id,
            "version": agent_version(),
            "state": self.state,
            "boot_id": str(self.boot_id),
            "boot_count": self.boot_count,
            "uptime_s": round(time.monotonic() - self.started_monotonic, 1),
            "restart_needed": self.restart_needed,
            "store": None if store_info is None else vars(store_info),
            "scheduler": self.scheduler.jobs(),
            "components": {c.name: c.status() for c in self.components},
        }


def _flatten(config: AgentConfig) -> dict[str, Any]:
    """``{"section.key": value}`` for every key; dict- and list-valued keys stay whole."""
    flat: dict[str, Any] = {}
    for name in type(config).model_fields:
        value = getattr(config, name)
        if isinstance(value, BaseModel):
            for key in type(value).model_fields:
                flat[f"{name}.{key}"] = getattr(value, key)
        else:
            flat[name] = value
    return flat
