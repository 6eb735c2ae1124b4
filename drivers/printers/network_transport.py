"""Network printers (raw TCP, usually port 9100) through python-escpos ``Network``."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, cast

from escpos.exceptions import DeviceNotFoundError

from drivers.printers.transport import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_WRITE_TIMEOUT,
    PrinterTransport,
    fail,
    positive_timeout,
)

if TYPE_CHECKING:
    from escpos.printer import Network

DEFAULT_PORT = 9100


class NetworkTransport(PrinterTransport):
    scheme = "tcp"
    # many printers serve one TCP client at a time: do not hold the port between jobs
    keep_open_default = False

    def __init__(
        self,
        host: str,
        port: int = DEFAULT_PORT,
        *,
        write_timeout: float = DEFAULT_WRITE_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    ) -> None:
        super().__init__(write_timeout=write_timeout)
        self.host, self.port = host, int(port)
        self.connect_timeout = positive_timeout(connect_timeout, "connect_timeout")
        self.escpos: Network | None = None

    @property
    def is_open(self) -> bool:
        return bool(self.escpos is not None and self.escpos._device)

    def _link(self) -> Network:
        if self.escpos is None:
            raise fail(f"{self.describe()} is not open")
        return self.escpos

    @property
    def _socket(self) -> socket.socket:
        # python-escpos ships no type information; its Network keeps the connected socket as ``device``
        return cast(socket.socket, self._link().device)

    def _open(self) -> None:
        # imported on first open: python-escpos's printer classes load Pillow, qrcode and PyYAML
        from escpos.printer import Network

        self.escpos = Network(host=self.host, port=self.port, timeout=self.connect_timeout)
        try:
            self.escpos.open()
        except (DeviceNotFoundError, OSError) as error:
            self.escpos = None
            raise fail(f"cannot connect to {self.describe()}", error) from error
        # small status queries must not wait for Nagle's algorithm
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._socket.settimeout(self.write_timeout)

    def _write(self, data: bytes) -> None:
        try:
            self._socket.settimeout(self.write_timeout)
            self._link()._raw(data)
        except TimeoutError as error:
            self.close()
            raise fail(f"write to {self.describe()} timed out", error, timed_out=True) from error
        except OSError as error:
            self.close()
            raise fail(f"write to {self.describe()} failed", error) from error

    def _read_chunk(self, timeout: float) -> bytes:
        try:
            self._socket.settimeout(max(timeout, 0.001))
            chunk = self._socket.recv(64)
        except TimeoutError:
            return b""
        except OSError as error:
            self.close()
            raise fail(f"read from {self.describe()} failed", error) from error
        if not chunk:
            self.close()
            raise fail(f"{self.describe()} closed the connection")
        return chunk

    def discard_input(self) -> None:
        self._inbox.clear()
        if not self.is_open:
            return
        sock = self._socket
        sock.setblocking(False)
        try:
            while sock.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as error:
            self.close()
            raise fail(f"read from {self.describe()} failed", error) from error
        finally:
            if self.is_open:
                sock.settimeout(self.write_timeout)

    def describe(self) -> str:
        return f"tcp://{self.host}:{self.port}"
