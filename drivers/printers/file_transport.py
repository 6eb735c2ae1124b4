"""Printers reached through a file: ``/dev/usb/lp*`` (usblp kernel driver) or a plain file.

python-escpos's ``File`` opens write-only and writes without a timeout; a
stalled ``/dev/usb/lp0`` then blocks forever. Character devices are opened
non-blocking here, written with a deadline and read for status answers.
A regular file (useful to capture jobs) cannot answer, so its status is
always ``unknown``.
"""

from __future__ import annotations

import errno
import os
import select
import stat
import time

from escpos.printer import File

from drivers.printers.transport import DEFAULT_WRITE_TIMEOUT, PrinterTransport, fail


class DescriptorFile(File):
    """python-escpos ``File`` whose device is a raw, non-blocking file descriptor."""

    def __init__(self, devfile: str, write_timeout: float) -> None:
        super().__init__(devfile=devfile, auto_flush=True)
        self.write_timeout = write_timeout
        self.fd: int | None = None
        self.readable = False

    def open(self, raise_not_found: bool = True) -> None:
        try:
            is_device = stat.S_ISCHR(os.stat(self.devfile).st_mode)
        except FileNotFoundError:
            is_device = False
        if is_device:
            try:
                self.fd = os.open(self.devfile, os.O_RDWR | os.O_NONBLOCK | os.O_NOCTTY)
                self.readable = True
            except OSError as error:
                if error.errno not in (errno.EACCES, errno.EINVAL, errno.EPERM):
                    raise
                self.fd = os.open(self.devfile, os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY)
        else:
            self.fd = os.open(self.devfile, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self.device = self.fd

    def _descriptor(self) -> int:
        if self.fd is None:
            raise OSError(errno.EBADF, f"{self.devfile} is not open")
        return self.fd

    def _raw(self, msg: bytes) -> None:
        fd = self._descriptor()
        view, deadline = memoryview(msg), time.monotonic() + self.write_timeout
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{len(view)} of {len(msg)} bytes not accepted within {self.write_timeout}s")
            if not poller.poll(remaining * 1000):
                continue
            try:
                written = os.write(fd, view)
            except BlockingIOError:
                continue
            view = view[written:]

    def _read(self, timeout: float = 0.0) -> bytes:
        if not self.readable:
            return b""
        fd = self._descriptor()
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            return b""
        try:
            return os.read(fd, 64)
        except BlockingIOError:
            return b""

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
        self.fd = None
        self._device = False


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
