"""Scan events: what was read, what it probably is, and whether its check digit holds."""

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


# AIM symbology identifiers ("]" + code letter + modifier digit), sent when the
# scanner is configured to; they make the symbology certain instead of guessed.
_AIM = re.compile(r"^\](?P<code>[A-Za-z])(?P<modifier>[0-9A-Za-z])")
_AIM_SYMBOLOGIES = {"E": Symbology.EAN13, "C": Symbology.CODE128, "A": Symbology.CODE39, "Q": Symbology.QR,
                    "d": Symbology.DATAMATRIX}
# longest data a receipt-sized linear code realistically carries; longer is a 2D code
LINEAR_MAX_LENGTH = 48


def gtin_valid(digits: str) -> bool:
    # ASCII only: "²" is a digit to str.isdigit() but not to int()
    return digits.isascii() and digits.isdigit() and len(digits) >= 2 and gtin_check_digit(digits[:-1]) == int(digits[-1])


def _by_length(digits: str) -> Symbology | None:
    return {13: Symbology.EAN13, 8: Symbology.EAN8, 12: Symbology.UPCA}.get(len(digits))


def classify(data: str, *, aim_ids: bool = False) -> tuple[str, Symbology, bool | None]:
    """Strip an AIM identifier if configured, guess the symbology, validate GTIN check digits.

    Without AIM identifiers the guess is: 13/12/8 digits are EAN-13/UPC-A/EAN-8;
    text that is long, multi-line, non-ASCII or a URL is a QR code; any other
    printable ASCII is Code 128 (the common linear code for non-GTIN data).
    """
    if aim_ids:
        match = _AIM.match(data)
        if match:
            code, modifier = match["code"], match["modifier"]
            payload = data[match.end():]
            symbology = _AIM_SYMBOLOGIES.get(code, Symbology.UNKNOWN)
            if code == "E":
                # UPC-A travels as ]E0 with 13 digits (a leading 0), so it reads as EAN-13
                symbology = Symbology.EAN8 if modifier == "4" else Symbology.EAN13
            elif code == "C" and modifier == "1":
                symbology = Symbology.GS1_128
            valid = gtin_valid(payload) if symbology in (Symbology.EAN13, Symbology.EAN8) else None
            return payload, symbology, valid
    if data.isdigit() and data.isascii():
        gtin = _by_length(data)
        if gtin is not None:
            return data, gtin, gtin_valid(data)
        return data, Symbology.CODE128, None
    if not data.isascii() or not data.isprintable() or len(data) > LINEAR_MAX_LENGTH or "://" in data:
        return data, Symbology.QR, None
    return data, Symbology.CODE128, None


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
