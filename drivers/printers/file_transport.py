"""Printers reached through a file: ``/dev/usb/lp*`` (usblp kernel driver) or a plain file.

python-escpos's ``File`` opens write-only and writes without a timeout; a
stalled ``/dev/usb/lp0`` then blocks forever. Character devices are opened
non-blocking here, written with a deadline and read for status answers.
A regular file (useful to capture jobs) cannot answer, so its status is
always ``unknown``.
"""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING

from drivers.printers.transport import DEFAULT_WRITE_TIMEOUT, PrinterTransport, fail

if TYPE_CHECKING:
    from drivers.printers.escpos_links import DescriptorFile


class FileTransport(PrinterTransport):
    scheme = "file"

    def __init__(self, path: str, *, write_timeout: float = DEFAULT_WRITE_TIMEOUT) -> None:
        super().__init__(write_timeout=write_timeout)
        self.path = path
        self.escpos: DescriptorFile | None = None

    @property
    def is_open(self) -> bool:
        return self.escpos is not None and self.escpos.fd is not None

    @property
    def bidirectional(self) -> bool:
        if self.escpos is not None and self.escpos.fd is not None:
            return self.escpos.readable
        try:
            return stat.S_ISCHR(os.stat(self.path).st_mode)
        except OSError:
            return False

    def _link(self) -> DescriptorFile:
        if self.escpos is None:
            raise fail(f"{self.describe()} is not open")
        return self.escpos

    def _open(self) -> None:
        # imported on first open: python-escpos's printer classes load Pillow, qrcode and PyYAML
        from drivers.printers.escpos_links import DescriptorFile

        self.escpos = DescriptorFile(self.path, self.write_timeout)
        try:
            self.escpos.open()
        except OSError as error:
            self.escpos = None
            raise fail(f"cannot open {self.describe()}", error) from error

    def _write(self, data: bytes) -> None:
        try:
            self._link()._raw(data)
        except TimeoutError as error:
            raise fail(f"write to {self.describe()} timed out", error, timed_out=True) from error
        except OSError as error:
            self.close()
            raise fail(f"write to {self.describe()} failed", error) from error

    def _read_chunk(self, timeout: float) -> bytes:
        try:
            return self._link()._read(timeout)
        except OSError as error:
            self.close()
            raise fail(f"read from {self.describe()} failed", error) from error

    def describe(self) -> str:
        return f"file://{self.path}"
