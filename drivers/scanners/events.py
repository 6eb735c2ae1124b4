"""Scan events: what was read, what it probably is, and whether its check digit holds.

Input that cannot be a barcode (too long, binary, control characters, a length no
symbology has) is turned away as a :class:`ScanRejection` with a stable reason.
"""

from __future__ import annotations

import enum
import re
import threading
import time
from dataclasses import dataclass, field

from drivers.errors import ConfigError
from drivers.receipt.document import gtin_check_digit


class Symbology(str, enum.Enum):
    EAN13 = "ean13"
    EAN8 = "ean8"
    UPCA = "upca"
    CODE128 = "code128"
    GS1_128 = "gs1-128"
    CODE39 = "code39"
    QR = "qr"
    DATAMATRIX = "datamatrix"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ScanEvent:
    data: str
    symbology: Symbology
    # check digit verdict for EAN-13/EAN-8/UPC-A; None for symbologies whose
    # check (if any) the scanner already enforced and does not transmit
    valid: bool | None
    source: str  # identity of the scanner
    timestamp: float = field(default_factory=time.time)  # wall clock, for records
    monotonic: float = field(default_factory=time.monotonic)  # for intervals
    raw: bytes = b""


class RejectReason(str, enum.Enum):
    TOO_LONG = "too_long"  # more than max_length before the terminator
    NOT_TEXT = "not_text"  # bytes that are not text in the configured encoding
    CONTROL_CHARACTERS = "control_characters"  # a control character other than the terminator
    NO_SYMBOLOGY = "no_symbology"  # no barcode symbology carries data of this length and alphabet


@dataclass(frozen=True)
class ScanRejection:
    """Input a scanner delivered that is not passed on as a scan."""

    reason: RejectReason
    message: str  # for people: what was wrong and what to check
    length: int  # bytes (serial) or characters (HID) of the rejected input
    source: str  # identity of the scanner
    preview: str  # the start of the input, escaped, for logs
    timestamp: float = field(default_factory=time.time)
    monotonic: float = field(default_factory=time.monotonic)


class ScanRejected(Exception):
    def __init__(self, reason: RejectReason, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


@dataclass(frozen=True)
class TooLong:
    """What a framer hands on instead of a code longer than its limit (the code itself is gone)."""

    length: int
    start: bytes | str = field(default=b"", compare=False)  # its first bytes or characters, for the log


# AIM symbology identifiers ("]" + code letter + modifier digit), sent when the
# scanner is configured to; they make the symbology certain instead of guessed.
_AIM = re.compile(r"^\](?P<code>[A-Za-z])(?P<modifier>[0-9A-Za-z])")
_AIM_SYMBOLOGIES = {
    "E": Symbology.EAN13,
    "C": Symbology.CODE128,
    "A": Symbology.CODE39,
    "Q": Symbology.QR,
    "d": Symbology.DATAMATRIX,
}
# longest data a receipt-sized linear code realistically carries; longer is a 2D code
LINEAR_MAX_LENGTH = 48
# QR version 40 at error correction L: the most a QR code can hold
QR_MAX_DIGITS = 7089
QR_MAX_BYTES = 2953
DEFAULT_MAX_LENGTH = 4096
PREVIEW_LENGTH = 24  # how much of a rejected input is kept to show in logs
# GS (FNC1) separates fields in GS1 data (GS1-128, GS1 DataMatrix marking codes): part of the code
GS1_SEPARATOR = "\x1d"
_CONTROL = re.compile(r"[\x00-\x1c\x1e-\x1f\x7f-\x9f]")


def gtin_valid(digits: str) -> bool:
    # ASCII only: "²" is a digit to str.isdigit() but not to int()
    return (
        digits.isascii() and digits.isdigit() and len(digits) >= 2 and gtin_check_digit(digits[:-1]) == int(digits[-1])
    )


def _by_length(digits: str) -> Symbology | None:
    return {13: Symbology.EAN13, 8: Symbology.EAN8, 12: Symbology.UPCA}.get(len(digits))


def check_text(text: str, max_length: int) -> None:
    """Raise :class:`ScanRejected` for text that cannot be a scanned code."""
    if len(text) > max_length:
        raise ScanRejected(
            RejectReason.TOO_LONG,
            f"{len(text)} characters, more than max_length {max_length}: not a "
            "barcode; check the scanner's suffix (it may not end its codes)",
        )
    if "\ufffd" in text:
        raise ScanRejected(
            RejectReason.NOT_TEXT,
            "input that is not text (binary data, a wrong baud rate or encoding): "
            "check the scanner's baudrate and encoding",
        )
    control = _CONTROL.search(text)
    if control:
        raise ScanRejected(
            RejectReason.CONTROL_CHARACTERS,
            f"control character {control.group()!r} at position {control.start()}: only the terminator "
            "may be one; check the scanner's prefix and suffix settings",
        )


def classify(data: str, *, aim_ids: bool = False) -> tuple[str, Symbology, bool | None]:
    """Strip an AIM identifier if configured, guess the symbology, validate GTIN check digits.

    Without AIM identifiers the symbology is guessed only where length and alphabet fit:
    8/12/13 ASCII digits are EAN-8/UPC-A/EAN-13; other printable ASCII up to 48 characters
    (digits included) is Code 128; anything else is QR if a QR code can hold it (7089 digits,
    2953 bytes of text). Data no symbology holds raises :class:`ScanRejected`.
    """
    if aim_ids:
        match = _AIM.match(data)
        if match:
            code, modifier = match["code"], match["modifier"]
            payload = data[match.end() :]
            symbology = _AIM_SYMBOLOGIES.get(code, Symbology.UNKNOWN)
            if code == "E":
                # UPC-A travels as ]E0 with 13 digits (a leading 0), so it reads as EAN-13
                symbology = Symbology.EAN8 if modifier == "4" else Symbology.EAN13
            elif code == "C" and modifier == "1":
                symbology = Symbology.GS1_128
            valid = gtin_valid(payload) if symbology in (Symbology.EAN13, Symbology.EAN8) else None
            return payload, symbology, valid
    digits = data.isdigit() and data.isascii()
    if digits:
        gtin = _by_length(data)
        if gtin is not None:
            return data, gtin, gtin_valid(data)
    linear = data.isascii() and data.replace(GS1_SEPARATOR, "").isprintable() and "://" not in data
    if linear and len(data) <= LINEAR_MAX_LENGTH:
        return data, Symbology.CODE128, None
    size, limit, unit = (
        (len(data), QR_MAX_DIGITS, "digits") if digits else (len(data.encode("utf-8")), QR_MAX_BYTES, "bytes")
    )
    if size <= limit:
        return data, Symbology.QR, None
    raise ScanRejected(
        RejectReason.NO_SYMBOLOGY,
        f"{size} {unit} fit no barcode (Code 128 holds up to {LINEAR_MAX_LENGTH} characters, a QR code "
        f"{limit} {unit}): not a scan; check the scanner's suffix (it may not end its codes)",
    )


class DuplicateFilter:
    """Drops a scan identical to the previous one seen within ``window`` seconds.

    The window slides: a scanner re-reading a code held under it produces
    one scan however long the code stays there. ``window=0`` disables it.
    """

    def __init__(self, window: float = 1.0) -> None:
        if not window >= 0:  # also NaN; a ConfigError (a ValueError): it comes from the device options
            raise ConfigError(f"dedupe window must be >= 0 seconds, got {window!r}")
        self.window = window
        self._last_data: str | None = None
        self._last_seen = float("-inf")
        self._lock = threading.Lock()

    def accept(self, data: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        with self._lock:
            repeat = data == self._last_data and now - self._last_seen < self.window
            self._last_data, self._last_seen = data, now
            return not repeat
