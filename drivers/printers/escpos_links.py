"""python-escpos's printer classes, hardened for the transports.

In a module of their own because importing python-escpos's printer classes loads Pillow, qrcode,
python-barcode and PyYAML and parses its printer database: each transport imports this module
when it opens its device, so an agent without that printer never pays for them.
"""

from __future__ import annotations

import errno
import os
import select
import stat
import time
from typing import Any

import serial
from escpos.exceptions import DeviceNotFoundError
from escpos.printer import File, Serial, Usb


class HardenedUsb(Usb):
    """python-escpos ``Usb`` that refuses to run without a write timeout."""

    def __init__(self, *args: Any, timeout: int, **kwargs: Any) -> None:
        if not isinstance(timeout, int) or timeout <= 0:
            raise ValueError("USB write timeout must be a positive number of milliseconds")
        super().__init__(*args, timeout=timeout, **kwargs)

    def _raw(self, msg: bytes) -> None:
        assert self.device
        self.device.write(self.out_ep, msg, self.timeout)


class HardenedSerial(Serial):
    # python-escpos's ``device`` property, typed for mypy (python-escpos ships no type information):
    # the pyserial port while open, None after a failed open or a close
    device: serial.Serial | None

    def __init__(self, *args: Any, write_timeout: float, rtscts: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.write_timeout = write_timeout
        self.rtscts = rtscts

    def open(self, raise_not_found: bool = True) -> None:
        try:
            self.device = serial.Serial(
                port=self.devfile,
                baudrate=self.baudrate,
                bytesize=self.bytesize,
                parity=self.parity,
                stopbits=self.stopbits,
                timeout=self.timeout,
                xonxoff=self.xonxoff,
                dsrdtr=self.dsrdtr,
                rtscts=self.rtscts,
                write_timeout=self.write_timeout,
            )
        except (ValueError, serial.SerialException) as error:
            self.device = None
            raise DeviceNotFoundError(f"Unable to open serial printer on {self.devfile}: {error}") from error


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
