"""The hardware component: builds the configured devices and keeps them working.

Printers print through the durable queue; scanners deliver scans from their
reader threads onto the agent loop and into the event bus; drawers open on
request. Device status is polled by a named scheduler job and changes are
published as events.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import TYPE_CHECKING, Any

import drivers
from agent.config import ConfigError
from agent.hardware.print_queue import PrintQueue, PrintQueueError
from agent.hardware.receipts import test_page

if TYPE_CHECKING:
    from agent.daemon import Agent

log = logging.getLogger(__name__)


class HardwareError(ConfigError):
    """A configured device cannot be set up, or a hardware action failed."""


class Hardware:
    name = "hardware"

    def __init__(self, agent: Agent) -> None:
        assert agent.store is not None
        self.agent = agent
        config = agent.config
        self.printers: dict[str, drivers.Printer] = {}
        for printer in config.printers:
            try:
                self.printers[printer.name] = drivers.open_printer(printer.url, name=printer.name, **printer.options)
            except drivers.ConfigError as exc:
                raise HardwareError(f"printer '{printer.name}': {exc}") from None
        self.drawers: dict[str, drivers.KickableDrawer] = {}
        for drawer in config.drawers:
            try:
                self.drawers[drawer.name] = drivers.open_drawer(drawer.url, printer=self.printers.get(drawer.printer or ""), **drawer.options)
            except drivers.ConfigError as exc:
                raise HardwareError(f"drawer '{drawer.name}': {exc}") from None
        self.scanners: dict[str, drivers.Scanner] = {}
        for scanner in config.scanners:
            try:
                self.scanners[scanner.name] = drivers.open_scanner(scanner.url, **scanner.options)
            except drivers.ConfigError as exc:
                raise HardwareError(f"scanner '{scanner.name}': {exc}") from None
        self.receipt_printer = config.hardware.receipt_printer or next(iter(self.printers), None)
        self.cash_drawer = config.hardware.cash_drawer or next(iter(self.drawers), None)
        self.queue = PrintQueue(agent.store, self.printers, config.hardware.status_poll_s, on_event=self._event)
        self.statuses: dict[str, str] = {}
        self.scans = 0
        self.discovery = drivers.Discovery([drivers.UsbSource(), drivers.SerialSource(), drivers.InputSource()])

    # ---------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        recovered = self.queue.recover_interrupted()
        if recovered:
            self._event("print.recovered", {"jobs": recovered})
        self.queue.start()
        for name, scanner in self.scanners.items():
            try:
                scanner.start(lambda event, name=name: self.agent.call_from_thread(self._on_scan, name, event))
            except drivers.DriverError as exc:
                # A missing scanner must not stop the till: sales go on with manual entry.
                log.error("scanner could not start; check the cable and the configured path", extra={"scanner": name, "problem": str(exc)})
        if self.printers:
            self.agent.scheduler.every("printer-status", self.agent.config.hardware.status_poll_s, self.poll_status, run_now=True)
        if self.agent.config.hardware.discovery_interval_s:
            self.agent.scheduler.every("device-discovery", self.agent.config.hardware.discovery_interval_s, self.discover, run_now=True)

    async def stop(self) -> None:
        self.agent.scheduler.cancel("printer-status")
        self.agent.scheduler.cancel("device-discovery")
        await self.queue.stop()
        for scanner in self.scanners.values():
            await asyncio.to_thread(scanner.stop)
        for drawer in self.drawers.values():
            await asyncio.to_thread(drawer.close)
        for printer in self.printers.values():
            await asyncio.to_thread(printer.close)

    def status(self) -> dict[str, Any]:
        printers = {
            name: {"status": self.statuses.get(name, "unknown"), "queued": self.queue.waiting(name), "last_error": self.queue.last_error.get(name)}
            for name in self.printers
        }
        parts = [f"{n} {p['status']}" + (f" ({p['queued']} queued)" if p["queued"] else "") for n, p in printers.items()]
        return {
            "summary": "; ".join(parts) if parts else "no printers configured",
            "printers": printers,
            "scanners": {name: {"status": scanner.status().value} for name, scanner in self.scanners.items()},
            "drawers": list(self.drawers),
            "receipt_printer": self.receipt_printer,
            "cash_drawer": self.cash_drawer,
            "scans": self.scans,
            "discovered": [
                {
                    "identity": identity,
                    "kind": descriptor.transport.value,
                    "driver": driver.__name__ if driver else None,
                    "description": " ".join(filter(None, [descriptor.manufacturer, descriptor.product, descriptor.device_path])),
                }
                for identity, (descriptor, driver) in sorted(self.discovery.devices.items())
            ],
        }

    # ------------------------------------------------------------------ events
    def _event(self, kind: str, data: dict[str, Any]) -> None:
        self.agent.events.publish(kind, **data)

    def _on_scan(self, scanner: str, event: drivers.ScanEvent) -> None:
        self.scans += 1
        self.agent.events.publish(
            "scan", scanner=scanner, data=event.data, symbology=str(event.symbology.value), valid=event.valid, source=event.source
        )

    async def discover(self) -> None:
        """Hotplug: enumerate in a thread, publish what came and went."""
        for event in await asyncio.to_thread(self.discovery.poll):
            self._event(
                f"device.{event.action}",
                {"identity": event.descriptor.identity, "driver": event.driver.__name__ if event.driver else None},
            )

    async def poll_status(self) -> None:
        for name, printer in self.printers.items():
            status = await asyncio.to_thread(printer.status)
            value = status.status.value
            if self.statuses.get(name) != value:
                log.info("printer status", extra={"printer": name, "status": value})
                self.statuses[name] = value
                self._event("printer.status", {"printer": name, "status": value, "severity": status.severity.name.lower()})
                if status.can_print and self.queue.waiting(name):
                    self.queue.wake(name)  # back to ready: retry now, not at the next poll

    # ------------------------------------------------------------------ actions
    def test_print(self, printer: str | None = None) -> str:
        name = printer or self.receipt_printer
        if name is None:
            raise HardwareError("no printer is configured; add a [[printers]] table to the config")
        try:
            return self.queue.submit_document(
                name, test_page(self.agent.config.device_id, name, socket.gethostname(), time.time()), kind="test", ref=None
            )
        except PrintQueueError as exc:
            raise HardwareError(str(exc)) from None

    async def open_drawer(self, drawer: str | None = None) -> str:
        name = drawer or self.cash_drawer
        if name is None or name not in self.drawers:
            raise HardwareError(f"no drawer named '{name}' (configured: {', '.join(self.drawers) or 'none'})")
        try:
            await asyncio.to_thread(self.drawers[name].open)
        except (drivers.DriverError, OSError) as exc:
            raise HardwareError(f"drawer '{name}' did not open: {exc}") from None
        state = (await asyncio.to_thread(self.drawers[name].state)).value
        self._event("drawer", {"drawer": name, "action": "opened", "state": state})
        return state
