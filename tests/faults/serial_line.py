"""A slow serial printer line for tests: a pseudo-terminal the agent opens as
``serial://PATH``, whose far end is relayed to a TCP port (the virtual printer, which has no
serial front end) at the line's speed.

9600 baud with 8N1 framing carries 960 bytes per second. The relay reads the pseudo-terminal
only as fast as the line would carry the bytes, so what the agent writes waits in the kernel's
buffer and drains at that speed, as it does in a UART.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
import time
import tty

from tests.faults.throttle import Throttle

TICK_S = 0.01


class SerialLine:
    def __init__(self, target_host: str, target_port: int, *, bytes_per_s: float) -> None:
        self.target = (target_host, target_port)
        self.path: str | None = None
        self._to_printer = Throttle(bytes_per_s)
        self._to_agent = Throttle(bytes_per_s)
        self._master: int | None = None
        self._slave: int | None = None  # kept open: the line stays up while the agent restarts
        self._socket: socket.socket | None = None
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._pause_at: int | None = None  # bytes to the printer after which it pauses
        self.to_printer = 0  # bytes relayed to the printer so far
        self._thread = threading.Thread(target=self._relay, name="serial-line", daemon=True)

    def start(self) -> SerialLine:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no newline translation: ESC/POS is binary
        self.path = os.ttyname(self._slave)
        self._socket = socket.create_connection(self.target, timeout=5)
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._socket.settimeout(None)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        if self._socket is not None:
            self._socket.close()
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def pause(self) -> None:
        """The printer stops taking bytes (paper out with flow control, a hung printer): what the
        agent writes fills the pty's buffer, then its write blocks."""
        self._paused.set()

    def pause_after(self, count: int) -> None:
        """Pause once `count` more bytes have reached the printer (mid-job, past a status query)."""
        self._pause_at = self.to_printer + count

    def resume(self) -> None:
        self._pause_at = None
        self._paused.clear()

    def __enter__(self) -> SerialLine:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _relay(self) -> None:
        assert self._master is not None and self._socket is not None
        to_agent = bytearray()
        try:
            while not self._stop.is_set():
                readable, _, _ = select.select([self._master, self._socket], [], [], TICK_S)
                if self._socket in readable:
                    data = self._socket.recv(4096)
                    if not data:
                        return  # the printer went away
                    to_agent += data
                if self._master in readable and self._paused.is_set():
                    time.sleep(TICK_S)  # the pty stays readable: nothing moves while paused
                elif self._master in readable:
                    # only what the line carries now: the rest waits in the pty, as in a UART
                    room = self._to_printer.take(4096)
                    if self._pause_at is not None:
                        room = min(room, max(0, self._pause_at - self.to_printer))
                        if room == 0:
                            self._paused.set()
                    if room:
                        chunk = os.read(self._master, room)
                        self._socket.sendall(chunk)
                        self.to_printer += len(chunk)
                    else:
                        time.sleep(TICK_S)  # the pty stays readable: do not spin until the line has room
                if to_agent:
                    size = self._to_agent.take(len(to_agent))
                    os.write(self._master, to_agent[:size])
                    del to_agent[:size]
        except OSError:
            pass
