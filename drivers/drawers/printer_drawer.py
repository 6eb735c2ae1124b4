"""A drawer wired to the printer's drawer kick-out connector."""

from __future__ import annotations

import itertools

from drivers.drawers.base import KickableDrawer
from drivers.errors import ConfigError
from drivers.interfaces import Printer
from drivers.receipt.escpos import drawer_kick_command
from drivers.status import DeviceStatus

_kick_numbers = itertools.count(1)


def realtime_pulse_command(pin: int, on_ms: int) -> bytes:
    """``DLE DC4 1 m t``: pulse now, even while the printer is offline (t in 100 ms units)."""
    return b"\x10\x14\x01" + (b"\x00" if pin == 2 else b"\x01") + bytes([min(8, max(1, round(on_ms / 100)))])


class PrinterDrawer(KickableDrawer):
    """Kicks with ``ESC p`` (or the real-time ``DLE DC4`` when ``realtime``) and reads
    the open sensor from DLE EOT 1 bit 2 through the printer.

    ``ESC p`` waits behind buffered data and is not executed while the printer is
    offline (paper out, cover open), so :meth:`open` raises the printer's typed
    error then; ``realtime`` pulses work offline but not all models support them.
    """

    def __init__(
        self,
        printer: Printer,
        *,
        pin: int = 2,
        on_ms: int = 100,
        off_ms: int = 100,
        realtime: bool = False,
        settle_time: float = 0.3,
        poll_interval: float = 0.2,
        identity: str | None = None,
    ) -> None:
        if pin not in (2, 5):  # a configuration mistake: the agent reports it as such at start
            raise ConfigError(f"drawer kick pin must be 2 or 5, not {pin!r}")
        super().__init__(
            identity or f"{printer.identity}#drawer-pin{pin}", settle_time=settle_time, poll_interval=poll_interval
        )
        self.printer, self.pin, self.on_ms, self.off_ms, self.realtime = printer, pin, on_ms, off_ms, realtime

    def _kick(self) -> None:
        job_id = f"drawer-kick-{next(_kick_numbers)}"
        if self.realtime:
            self.printer.send_raw(realtime_pulse_command(self.pin, self.on_ms), job_id, check_status=False)
        else:
            self.printer.send_raw(drawer_kick_command(self.pin, self.on_ms, self.off_ms), job_id)

    def state(self) -> DeviceStatus:
        return self.printer.drawer_status()

    def close(self) -> None:
        """The printer belongs to its owner; nothing to release here."""
