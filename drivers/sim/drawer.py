"""Virtual cash drawers: one wired to a (virtual) printer, one on a serial pseudo-terminal.

Run the serial one as a process::

    python -m drivers.sim.drawer --path-file /tmp/drawer.path

It prints nothing; the pty path goes to ``--path-file``. Commands on stdin:
``close``, ``open``, ``quit``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import select
import sys
import threading
import time
import tty
from typing import Any

logger = logging.getLogger(__name__)

# Serial drawer protocol defaults (as on IBM-style serial drawers): BEL opens,
# ACK asks for status, the answer has bit 6 set while the drawer is open.
SERIAL_KICK = b"\x07"
SERIAL_STATUS_QUERY = b"\x06"
SERIAL_OPEN_MASK = 0x40


class VirtualDrawer:
    """A drawer with a solenoid and an open sensor.

    A pulse of at least ``min_pulse_ms`` opens it; it stays open until
    :meth:`close` (the cashier pushes it shut) or ``auto_close_after`` seconds.
    """

    def __init__(
        self, *, open_level: str = "high", min_pulse_ms: int = 20, auto_close_after: float | None = None
    ) -> None:
        self.open_level = open_level
        self.min_pulse_ms = min_pulse_ms
        self.auto_close_after = auto_close_after
        self.kicks: list[tuple[int, int]] = []
        self._opened_at: float | None = None
        self._changed = threading.Condition()

    @property
    def is_open(self) -> bool:
        with self._changed:
            if (
                self._opened_at is not None
                and self.auto_close_after is not None
                and time.monotonic() - self._opened_at >= self.auto_close_after
            ):
                self._opened_at = None
            return self._opened_at is not None

    @property
    def pin_high(self) -> bool:
        """Level of the printer connector's pin 3 (the sensor), as the printer reports it."""
        return self.is_open == (self.open_level == "high")

    def kick(self, pin: int, on_ms: int) -> bool:
        with self._changed:
            self.kicks.append((pin, on_ms))
            if on_ms < self.min_pulse_ms:
                logger.debug("pulse of %d ms on pin %d too short to open the drawer", on_ms, pin)
                return False
            if self._opened_at is None:
                self._opened_at = time.monotonic()
                logger.info("drawer opened (pin %d, %d ms)", pin, on_ms)
            self._changed.notify_all()
            return True

    def open(self) -> None:
        """Open by hand (a key or a cashier)."""
        self.kick(0, self.min_pulse_ms)

    def close(self) -> None:
        with self._changed:
            if self._opened_at is not None:
                logger.info("drawer closed")
            self._opened_at = None
            self._changed.notify_all()

    def wait_for_kicks(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.kicks) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True


class VirtualSerialDrawer(VirtualDrawer):
    """A serial drawer on a pseudo-terminal: ``kick`` bytes open it, ``status_query`` gets one answer byte."""

    def __init__(
        self,
        *,
        kick_command: bytes = SERIAL_KICK,
        status_query: bytes = SERIAL_STATUS_QUERY,
        open_mask: int = SERIAL_OPEN_MASK,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.kick_command, self.status_query, self.open_mask = kick_command, status_query, open_mask
        self._master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no CR/LF translation
        self._slave = slave  # held so the pty survives a client closing and reopening it
        self.path = os.ttyname(slave)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> VirtualSerialDrawer:
        self._thread = threading.Thread(target=self._serve, name="sim-serial-drawer", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        buffer = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.1)
            if not ready:
                continue
            try:
                buffer += os.read(self._master, 256)
            except OSError:
                time.sleep(0.05)  # no client has the port open
                continue
            while buffer:
                if buffer.startswith(self.kick_command):
                    self.kick(0, self.min_pulse_ms)
                    buffer = buffer[len(self.kick_command) :]
                elif buffer.startswith(self.status_query):
                    os.write(self._master, bytes([self.open_mask if self.is_open else 0]))
                    buffer = buffer[len(self.status_query) :]
                elif self.kick_command.startswith(buffer) or self.status_query.startswith(buffer):
                    break  # wait for the rest of a command
                else:
                    buffer = buffer[1:]

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(2)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> VirtualSerialDrawer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Virtual serial cash drawer on a pseudo-terminal")
    parser.add_argument("--path-file", help="write the pty path here")
    parser.add_argument("--auto-close-after", type=float, help="close by itself after N seconds")
    parser.add_argument("--open-level", choices=("high", "low"), default="high")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    drawer = VirtualSerialDrawer(auto_close_after=args.auto_close_after, open_level=args.open_level).start()
    if args.path_file:
        with open(args.path_file, "w") as handle:
            handle.write(drawer.path)
    logger.info("virtual serial drawer on %s", drawer.path)
    try:
        for line in sys.stdin:
            command = line.strip().lower()
            if command == "close":
                drawer.close()
            elif command == "open":
                drawer.open()
            elif command == "quit":
                break
        else:
            threading.Event().wait()  # stdin closed: run until killed
    except KeyboardInterrupt:
        pass
    finally:
        drawer.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
