"""Serial barcode scanners (RS-232, or USB in CDC/virtual-COM mode) through pyserial."""

from __future__ import annotations

import logging
import time
from typing import Any

import serial

from drivers.errors import ConfigError, ScannerError
from drivers.identity import DeviceDescriptor, DeviceKind, Transport
from drivers.registry import Supports, UsbId, register_driver
from drivers.scanners.base import ThreadedScanner
from drivers.scanners.events import DEFAULT_MAX_LENGTH, PREVIEW_LENGTH, RejectReason, TooLong
from drivers.vendors import SCANNER_VENDORS

logger = logging.getLogger(__name__)

PARITIES = {
    "N": serial.PARITY_NONE,
    "E": serial.PARITY_EVEN,
    "O": serial.PARITY_ODD,
    "M": serial.PARITY_MARK,
    "S": serial.PARITY_SPACE,
}
STOPBITS = {1: serial.STOPBITS_ONE, 1.5: serial.STOPBITS_ONE_POINT_FIVE, 2: serial.STOPBITS_TWO}


class FrameSplitter:
    """Cuts a byte stream into codes.

    ``suffix`` ends a code (None: CR, LF or CRLF, whichever the scanner sends);
    an empty suffix with ``frame_gap`` > 0 ends a code after that much silence.
    ``prefix`` is removed when present. A code longer than ``max_length`` bytes
    (prefix not counted) is not buffered: its bytes are dropped as they come and
    its end yields a :class:`TooLong` in its place.
    """

    def __init__(
        self,
        prefix: bytes = b"",
        suffix: bytes | None = None,
        frame_gap: float = 0.0,
        max_length: int = DEFAULT_MAX_LENGTH,
    ) -> None:
        if suffix == b"" and frame_gap <= 0:
            raise ConfigError("an empty suffix needs frame_gap > 0 to know where a code ends")
        self.prefix, self.suffix, self.frame_gap = prefix, suffix, frame_gap
        self.max_length = max_length
        self._buffer = bytearray()
        self._dropped = 0  # bytes of the current, over-long code thrown away so far
        self._dropped_start = b""
        self._last_byte_at = 0.0

    def feed(self, data: bytes, now: float | None = None) -> list[bytes | TooLong]:
        now = time.monotonic() if now is None else now
        frames: list[bytes | TooLong] = []
        if data:
            self._buffer += data
            self._last_byte_at = now
        if self.suffix is None:
            while True:
                ends = [i for i in (self._buffer.find(b"\r"), self._buffer.find(b"\n")) if i >= 0]
                if not ends:
                    break
                end = min(ends)
                frames.append(self._finish(end, 1))
        elif self.suffix:
            while (end := self._buffer.find(self.suffix)) >= 0:
                frames.append(self._finish(end, len(self.suffix)))
        limit = self.max_length + len(self.prefix)
        if self._dropped or len(self._buffer) > limit:
            # no end in sight: drop what cannot be part of the suffix, keep the rest to find it
            keep = len(self.suffix) - 1 if self.suffix else 0
            cut = max(0, len(self._buffer) - keep)
            if not self._dropped:
                self._dropped_start = bytes(self._buffer[:PREVIEW_LENGTH])
            self._dropped += cut
            del self._buffer[:cut]
        if self.frame_gap > 0 and (self._buffer or self._dropped) and now - self._last_byte_at >= self.frame_gap:
            frames.append(self._finish(len(self._buffer), 0))
        return [f if isinstance(f, TooLong) else self._strip_prefix(f) for f in frames if f]

    def _finish(self, end: int, terminator: int) -> bytes | TooLong:
        """The code ending at ``end`` in the buffer, consumed with its terminator."""
        frame = bytes(self._buffer[:end])
        del self._buffer[: end + terminator]
        length, dropped, self._dropped = self._dropped + len(frame), self._dropped, 0
        if length > self.max_length + len(self.prefix):
            return TooLong(length, self._dropped_start if dropped else frame[:PREVIEW_LENGTH])
        return frame

    def _strip_prefix(self, frame: bytes) -> bytes:
        if self.prefix:
            if frame.startswith(self.prefix):
                return frame[len(self.prefix) :]
            logger.debug("code %r arrived without the configured prefix", frame)
        return frame


@register_driver
class SerialScanner(ThreadedScanner):
    supports = Supports(
        kind=DeviceKind.SCANNER,
        transports=frozenset({Transport.SERIAL}),
        usb_ids=tuple(UsbId(vendor) for vendor in SCANNER_VENDORS),
        notes="serial scanners and USB scanners in virtual COM port mode",
    )

    def __init__(
        self,
        path: str,
        *,
        baudrate: int = 9600,
        bytesize: int = 8,
        parity: str = "N",
        stopbits: float = 1,
        prefix: bytes = b"",
        suffix: bytes | None = None,
        frame_gap: float = 0.0,
        encoding: str = "utf-8",
        identity: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(identity or f"serial:{path}", **options)
        if parity.upper() not in PARITIES or stopbits not in STOPBITS or bytesize not in (5, 6, 7, 8):
            raise ConfigError("bad serial framing (parity N/E/O/M/S, stop bits 1/1.5/2, data bits 5-8)")
        self.path, self.baudrate, self.bytesize = path, int(baudrate), int(bytesize)
        self.parity, self.stopbits = PARITIES[parity.upper()], STOPBITS[stopbits]
        try:
            b"x".decode(encoding, "replace")  # now, not at the first scan (where it would end the reader thread)
        except LookupError:  # unknown, or not a text encoding (base64, rot13)
            raise ConfigError(f"unknown text encoding {encoding!r} (e.g. utf-8, latin-1, cp437)") from None
        self.encoding = encoding
        self.splitter = FrameSplitter(prefix, suffix, frame_gap, self.max_length)
        self._port: serial.Serial | None = None

    @classmethod
    def from_descriptor(cls, descriptor: DeviceDescriptor, **options: Any) -> SerialScanner:
        if descriptor.device_path is None:
            raise ConfigError("a serial scanner needs a device path")
        return cls(descriptor.device_path, identity=descriptor.identity, **options)

    def _open(self) -> None:
        try:
            self._port = serial.Serial(
                self.path,
                baudrate=self.baudrate,
                bytesize=self.bytesize,
                parity=self.parity,
                stopbits=self.stopbits,
                timeout=0.1,
            )
        except serial.SerialException as error:
            raise ScannerError(str(error)) from error

    def _read_loop(self) -> None:
        port = self._port
        if port is None:
            raise ScannerError(f"port of {self.identity} is not open")
        while not self._stop.is_set():
            try:
                chunk = port.read(max(1, port.in_waiting))
            except serial.SerialException as error:
                raise ScannerError(str(error)) from error
            for frame in self.splitter.feed(chunk):
                self._emit_frame(frame)

    def _emit_frame(self, frame: bytes | TooLong) -> None:
        if isinstance(frame, TooLong):
            self._emit_too_long(frame)
            return
        try:
            text = frame.decode(self.encoding)
        except UnicodeDecodeError as error:
            self._reject(
                RejectReason.NOT_TEXT,
                f"bytes that are not {self.encoding} text at position {error.start} "
                "(binary data, or a wrong baudrate or encoding): check the scanner's settings",
                len(frame),
                frame,
            )
            return
        self._emit(text, frame)

    def _close(self) -> None:
        if self._port is not None:
            self._port.close()
        self._port = None
