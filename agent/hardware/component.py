"""The hardware component: builds the configured devices and keeps them working.

Printers print through the durable queue; scanners deliver scans (and the
input they reject) from their reader threads onto the agent loop and into the
event bus; drawers open on request, and an open drawer's sensor is polled
until it is pushed shut. Device status is polled by a named scheduler job and
changes are published as events.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
import sqlite3
import time
from typing import Any

import drivers
from agent.config import ConfigError
from agent.hardware.facade import QueuedPrint, RenderedReceipt
from agent.hardware.print_queue import PrintQueue, PrintQueueError
from agent.hardware.receipts import test_page
from agent.refusal import Refused
from agent.runtime import Runtime
from agent.sales import receipts
from broker import contract as kc

log = logging.getLogger(__name__)

# What the POS API and kassactl call a drawer's sensor state (docs/pos-api.md).
DRAWER_STATES = {drivers.DeviceStatus.DRAWER_OPEN: "open", drivers.DeviceStatus.DRAWER_CLOSED: "closed"}


class HardwareConfigError(ConfigError):
    """A configured device cannot be set up (bad URL, unknown driver option): fix the config."""


class HardwareError(Refused):
    """A hardware action failed or names a device that is not configured; says what to do."""

    def __init__(self, message: str) -> None:
        super().__init__("unavailable", message)


class Hardware:
    """The hardware component, and the façade sales, licence and pairing print and open drawers
    through (agent/hardware/facade.py): nobody else touches its printers or its queue."""

    name = "hardware"

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        config = runtime.config
        self.printers: dict[str, drivers.Printer] = {}
        for printer in config.printers:
            try:
                options: dict[str, Any] = dict(printer.options)
                self.printers[printer.name] = drivers.open_printer(printer.url, name=printer.name, **options)
            except drivers.ConfigError as exc:
                raise HardwareConfigError(f"printer '{printer.name}': {exc}") from None
        self.drawers: dict[str, drivers.KickableDrawer] = {}
        for drawer in config.drawers:
            try:
                self.drawers[drawer.name] = drivers.open_drawer(
                    drawer.url, printer=self.printers.get(drawer.printer or ""), **drawer.options
                )
            except drivers.ConfigError as exc:
                raise HardwareConfigError(f"drawer '{drawer.name}': {exc}") from None
        self.sensor_poll_s = {drawer.name: drawer.sensor_poll_s for drawer in config.drawers}
        self._drawer_opened_at: dict[str, float] = {}  # drawers whose sensor is being polled, since when
        self._drawer_openings: dict[str, int] = {}  # per drawer: a sensor reading older than the last opening is stale
        self.scanners: dict[str, drivers.Scanner] = {}
        for scanner in config.scanners:
            try:
                self.scanners[scanner.name] = drivers.open_scanner(
                    scanner.url, max_length=scanner.max_length, **scanner.options
                )
            except drivers.ConfigError as exc:
                raise HardwareConfigError(f"scanner '{scanner.name}': {exc}") from None
        self.receipt_printer = config.hardware.receipt_printer or next(iter(self.printers), None)
        self.cash_drawer = config.hardware.cash_drawer or next(iter(self.drawers), None)
        self.queue = PrintQueue(
            runtime.store, self.printers, config.hardware.status_poll_s, on_event=self._event, copy_mark=self._copy_mark
        )
        self.statuses: dict[str, str] = {}
        self.scans = 0
        self.scans_rejected = 0
        self.discovery = drivers.Discovery([drivers.UsbSource(), drivers.SerialSource(), drivers.InputSource()])

    # ---------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        recovered = self.queue.recover_interrupted()
        if recovered:
            self._event("print.recovered", {"jobs": recovered})
        self.queue.start()
        for name, scanner in self.scanners.items():
            try:
                scanner.start(
                    functools.partial(self.runtime.call_from_thread, self._on_scan, name),
                    functools.partial(self.runtime.call_from_thread, self._on_scan_rejected, name),
                )
            except drivers.DriverError as exc:
                # A missing scanner must not stop the till: sales go on with manual entry.
                log.error(
                    "scanner could not start; check the cable and the configured path",
                    extra={"scanner": name, "problem": str(exc)},
                )
        if self.printers:
            self.runtime.scheduler.every(
                "printer-status", self.runtime.config.hardware.status_poll_s, self.poll_status, run_now=True
            )
        if self.runtime.config.hardware.discovery_interval_s:
            self.runtime.scheduler.every(
                "device-discovery", self.runtime.config.hardware.discovery_interval_s, self.discover, run_now=True
            )

    async def stop(self) -> None:
        self.runtime.scheduler.cancel("printer-status")
        self.runtime.scheduler.cancel("device-discovery")
        for name in list(self._drawer_opened_at):
            self._stop_watching(name)
        await self.queue.stop()
        for scanner in self.scanners.values():
            await asyncio.to_thread(scanner.stop)
        for drawer in self.drawers.values():
            await asyncio.to_thread(drawer.close)
        for printer in self.printers.values():
            await asyncio.to_thread(printer.close)

    def status(self) -> dict[str, Any]:
        printers = {
            name: {
                "status": self.statuses.get(name, "unknown"),
                "queued": self.queue.waiting(name),
                "needs_attention": self.queue.needing_attention(name),
                "last_error": self.queue.last_error.get(name),
            }
            for name in self.printers
        }
        parts = [f"{n} {p['status']}" + _waiting_note(p) for n, p in printers.items()]
        return {
            "summary": "; ".join(parts) if parts else "no printers configured",
            "printers": printers,
            "scanners": {name: {"status": scanner.status().value} for name, scanner in self.scanners.items()},
            "drawers": list(self.drawers),
            "receipt_printer": self.receipt_printer,
            "cash_drawer": self.cash_drawer,
            "scans": self.scans,
            "scans_rejected": self.scans_rejected,
            "discovered": [
                {
                    "identity": identity,
                    "kind": descriptor.transport.value,
                    "driver": driver.__name__ if driver else None,
                    "description": " ".join(
                        filter(None, [descriptor.manufacturer, descriptor.product, descriptor.device_path])
                    ),
                }
                for identity, (descriptor, driver) in sorted(self.discovery.devices.items())
            ],
        }

    def _copy_mark(self) -> drivers.Receipt:
        """``*** COPY ***`` in the shop's language and the company's wording, read at each copy."""
        return receipts.copy_mark(
            receipts.current_template(self.runtime.store.read(), self.runtime.config.site.language)
        )

    # ------------------------------------------------------------------ events
    def _event(self, kind: str, data: dict[str, Any]) -> None:
        self.runtime.events.publish(kind, **data)

    def _on_scan(self, scanner: str, event: drivers.ScanEvent) -> None:
        self.scans += 1
        self.runtime.events.publish(
            "scan",
            scanner=scanner,
            data=event.data,
            symbology=str(event.symbology.value),
            valid=event.valid,
            source=event.source,
        )

    def _on_scan_rejected(self, scanner: str, rejection: drivers.ScanRejection) -> None:
        # the driver has logged it (rate-limited); the POS can tell the cashier the scan did not count
        self.scans_rejected += 1
        self.runtime.events.publish(
            "scan.rejected",
            scanner=scanner,
            reason=rejection.reason.value,
            message=rejection.message,
            length=rejection.length,
            source=rejection.source,
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
                self._event(
                    "printer.status", {"printer": name, "status": value, "severity": status.severity.name.lower()}
                )
                if status.can_print and self.queue.waiting(name):
                    self.queue.wake(name)  # back to ready: retry now, not at the next poll

    # ------------------------------------------------------------------- façade
    def peripherals(self) -> list[kc.Peripheral]:
        """The configured devices and their state, for the device's state report to the cloud."""
        found = [
            kc.Peripheral(kind=kc.PeripheralKind.PRINTER, model=name, status=self.statuses.get(name, "unknown"))
            for name in self.printers
        ]
        found += [
            kc.Peripheral(kind=kc.PeripheralKind.SCANNER, model=name, status=scanner.status().value)
            for name, scanner in self.scanners.items()
        ]
        found += [
            kc.Peripheral(kind=kc.PeripheralKind.DRAWER, model=name, status="configured") for name in self.drawers
        ]
        return found[:32]

    def has_drawer(self, name: str) -> bool:
        return name in self.drawers

    def render_receipt(self, document: drivers.Receipt) -> RenderedReceipt | None:
        """The receipt printer's bytes for ``document``, or None when no printer is configured.

        Rendered before a sale's transaction opens: the transaction only queues the bytes."""
        if self.receipt_printer is None:
            return None
        return RenderedReceipt(self.receipt_printer, self.printers[self.receipt_printer].render(document))

    def queue_rendered(self, conn: sqlite3.Connection, rendered: RenderedReceipt, *, kind: str, ref: str) -> str:
        """Queue rendered bytes inside the caller's transaction; the job id."""
        return self.queue.submit(conn, rendered.printer, rendered.data, kind=kind, ref=ref)

    def queue_receipt(
        self, document: drivers.Receipt, *, kind: str, ref: str | None = None, printer: str | None = None
    ) -> QueuedPrint:
        """Render and queue ``document`` on ``printer`` (default: the receipt printer)."""
        name = printer or self.receipt_printer
        if name is None:
            raise HardwareError("no printer is configured; add a [[printers]] table to the config")
        return QueuedPrint(self.queue.submit_document(name, document, kind=kind, ref=ref), name)

    def reprint_job(self, job_id: str) -> QueuedPrint | None:
        """A copy of a queued job (marked as a copy), or None when the queue no longer has it."""
        job = self.queue.get(job_id)
        if job is None:
            return None
        return QueuedPrint(self.queue.reprint(job_id), job.printer)

    # ------------------------------------------------------------------ actions
    def test_print(self, printer: str | None = None) -> str:
        name = printer or self.receipt_printer
        if name is None:
            raise HardwareError("no printer is configured; add a [[printers]] table to the config")
        try:
            return self.queue.submit_document(
                name,
                test_page(self.runtime.config.device_id, name, socket.gethostname(), time.time()),
                kind="test",
                ref=None,
            )
        except PrintQueueError as exc:
            raise HardwareError(str(exc)) from None

    async def open_drawer(self, drawer: str | None = None, *, cashier_id: str | None = None) -> str:
        """Kick the drawer; its sensor state after the settle time: ``open``, ``closed`` or ``unknown``.

        A failed kick is published as ``drawer.failed``; an open drawer is watched until it is
        shut (``drawer.closed``).
        """
        name = drawer or self.cash_drawer
        if name is None or name not in self.drawers:
            raise HardwareError(f"no drawer named '{name}' (configured: {', '.join(self.drawers) or 'none'})")
        try:
            await asyncio.to_thread(self.drawers[name].open)
        except Exception as exc:  # a driver bug too: whoever waits for the drawer must hear it failed
            self._event("drawer.failed", {"drawer": name, "error": str(exc), "cashier_id": cashier_id})
            if isinstance(exc, (drivers.DriverError, OSError)):
                raise HardwareError(f"drawer '{name}' did not open: {exc}") from None
            raise
        state = DRAWER_STATES.get(await asyncio.to_thread(self.drawers[name].state), "unknown")
        self._event("drawer", {"drawer": name, "action": "opened", "state": state})
        if state == "open":
            self._drawer_openings[name] = self._drawer_openings.get(name, 0) + 1
            self._watch_drawer(name)
        return state

    # ------------------------------------------------------- open drawer watch
    def _watch_drawer(self, name: str) -> None:
        """Poll the sensor of an open drawer until it is shut; a second opening keeps the first watch."""
        if name in self._drawer_opened_at:
            return
        self._drawer_opened_at[name] = time.monotonic()
        self.runtime.scheduler.every(
            f"drawer-watch-{name}", self.sensor_poll_s[name], functools.partial(self._check_drawer, name)
        )

    def _stop_watching(self, name: str) -> None:
        self._drawer_opened_at.pop(name, None)
        self.runtime.scheduler.cancel(f"drawer-watch-{name}")

    async def _check_drawer(self, name: str) -> None:
        if name not in self._drawer_opened_at:
            return  # stopped while this run was due
        openings = self._drawer_openings.get(name)
        status = await asyncio.to_thread(self.drawers[name].state)
        if status is not drivers.DeviceStatus.DRAWER_CLOSED:
            return  # still open, or the sensor did not answer this time (printer busy or offline): ask again
        if openings != self._drawer_openings.get(name):
            return  # opened again while the sensor was read: that reading is from before
        opened_at = self._drawer_opened_at.get(name)
        self._stop_watching(name)
        if opened_at is not None:
            open_s = round(time.monotonic() - opened_at, 1)
            log.info("drawer closed", extra={"drawer": name, "open_s": open_s})
            self._event("drawer.closed", {"drawer": name, "state": "closed", "open_s": open_s})


def _waiting_note(printer: dict[str, Any]) -> str:
    notes = [f"{printer['queued']} queued"] if printer["queued"] else []
    if printer["needs_attention"]:
        notes.append(f"{printer['needs_attention']} need a person: kassactl print jobs")
    return f" ({', '.join(notes)})" if notes else ""
