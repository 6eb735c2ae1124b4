"""ESC/POS real-time status (``DLE EOT n``) parsing.

python-escpos's ``paper_status()`` reports "paper adequate" when the printer
does not answer at all, so kassa queries and parses the four status bytes
itself, with a read timeout, and treats silence as ``UNKNOWN``.

Every answer byte has bit 1 and bit 4 set and bits 0 and 7 clear; anything
else is not a status byte (noise, a stale answer, another protocol).
"""

from __future__ import annotations

import logging
from typing import Protocol

from drivers.status import DeviceStatus, PrinterStatus, most_severe

logger = logging.getLogger(__name__)

DLE_EOT = b"\x10\x04"
QUERY_PRINTER = DLE_EOT + b"\x01"
QUERY_OFFLINE_CAUSE = DLE_EOT + b"\x02"
QUERY_ERROR_CAUSE = DLE_EOT + b"\x03"
QUERY_PAPER = DLE_EOT + b"\x04"

_FIXED_MASK = 0x93  # bits 0, 1, 4, 7
_FIXED_VALUE = 0x12  # bits 1 and 4 set

# n=1 printer status
PRINTER_DRAWER_PIN_HIGH = 0x04
PRINTER_OFFLINE = 0x08
PRINTER_WAITING_RECOVERY = 0x20
PRINTER_FEED_BUTTON = 0x40
# n=2 offline cause
OFFLINE_COVER_OPEN = 0x04
OFFLINE_FEEDING = 0x08
OFFLINE_PAPER_END_STOP = 0x20
OFFLINE_ERROR = 0x40
# n=3 error cause
ERROR_MECHANICAL = 0x04
ERROR_AUTOCUTTER = 0x08
ERROR_UNRECOVERABLE = 0x20
ERROR_AUTO_RECOVERABLE = 0x40
# n=4 roll paper sensors
PAPER_NEAR_END = 0x0C
PAPER_END = 0x60

DRAWER_OPEN_LEVELS = ("high", "low")


def is_status_byte(value: int) -> bool:
    return (value & _FIXED_MASK) == _FIXED_VALUE


def drawer_state(printer_byte: int | None, open_level: str = "high") -> DeviceStatus:
    """Drawer sensor from the n=1 byte. Which pin-3 level means "open" depends on the drawer."""
    if printer_byte is None or not is_status_byte(printer_byte):
        return DeviceStatus.UNKNOWN
    pin_high = bool(printer_byte & PRINTER_DRAWER_PIN_HIGH)
    return DeviceStatus.DRAWER_OPEN if pin_high == (open_level == "high") else DeviceStatus.DRAWER_CLOSED


def interpret(
    printer: int | None,
    offline_cause: int | None,
    paper: int | None,
    error_cause: int | None = None,
    *,
    drawer_open_level: str = "high",
) -> PrinterStatus:
    """Map the answers to DLE EOT 1, 2, 4 (and 3 when an error is flagged) to one status.

    ``None`` means the printer did not answer that query. A missing or
    malformed answer to 1, 2 or 4 makes the whole status ``UNKNOWN``: kassa
    never guesses "ready".
    """
    answers = {1: printer, 2: offline_cause, 4: paper}
    raw = bytes(v for v in (printer, offline_cause, error_cause, paper) if v is not None)
    for n, value in answers.items():
        if value is None:
            return PrinterStatus.unknown(f"no answer to DLE EOT {n}", raw)
        if not is_status_byte(value):
            return PrinterStatus.unknown(f"unexpected answer 0x{value:02x} to DLE EOT {n}", raw)
    assert printer is not None and offline_cause is not None and paper is not None

    conditions: set[DeviceStatus] = set()
    details: list[str] = []
    if offline_cause & OFFLINE_COVER_OPEN:
        conditions.add(DeviceStatus.COVER_OPEN)
    if offline_cause & OFFLINE_PAPER_END_STOP or paper & PAPER_END:
        conditions.add(DeviceStatus.PAPER_OUT)
    elif paper & PAPER_NEAR_END:
        conditions.add(DeviceStatus.PAPER_NEAR_END)
    if offline_cause & OFFLINE_ERROR:
        conditions.add(DeviceStatus.OFFLINE)
        details.extend(_error_details(error_cause))
    if offline_cause & OFFLINE_FEEDING:
        details.append("paper being fed by the feed button")
    if printer & PRINTER_WAITING_RECOVERY:
        conditions.add(DeviceStatus.OFFLINE)
        details.append("waiting for online recovery")
    if printer & PRINTER_OFFLINE and not conditions & {DeviceStatus.COVER_OPEN, DeviceStatus.PAPER_OUT}:
        conditions.add(DeviceStatus.OFFLINE)
        details.append("printer reports offline")

    return PrinterStatus(
        status=most_severe(conditions),
        conditions=frozenset(conditions),
        drawer=drawer_state(printer, drawer_open_level),
        details=tuple(details),
        raw=raw,
    )


def _error_details(error_cause: int | None) -> list[str]:
    if error_cause is None or not is_status_byte(error_cause):
        return ["error (cause unknown)"]
    found = []
    if error_cause & ERROR_MECHANICAL:
        found.append("mechanical error")
    if error_cause & ERROR_AUTOCUTTER:
        found.append("autocutter error")
    if error_cause & ERROR_UNRECOVERABLE:
        found.append("unrecoverable error")
    if error_cause & ERROR_AUTO_RECOVERABLE:
        found.append("auto-recoverable error (e.g. head temperature)")
    return found or ["error"]


class StatusChannel(Protocol):
    """What a transport must offer to be queried for DLE EOT status."""

    def write(self, data: bytes) -> None: ...

    def read_byte(self, timeout: float) -> int | None: ...

    def discard_input(self) -> None: ...


def query_byte(channel: StatusChannel, query: bytes, timeout: float) -> int | None:
    channel.write(query)
    value = channel.read_byte(timeout)
    if value is None:
        logger.debug("no answer to %s within %.2fs", query.hex(), timeout)
    return value


def read_status(
    channel: StatusChannel, timeout: float, *, drawer_open_level: str = "high", first_timeout: float | None = None
) -> PrinterStatus:
    """Query DLE EOT 1, 2, 4 (and 3 if needed) and interpret the answers.

    ``first_timeout`` is the wait for the first answer when the query queues behind bytes
    still on their way (a job just written): the printer answers in stream order."""
    channel.discard_input()
    first_wait = timeout if first_timeout is None else max(timeout, first_timeout)
    printer = query_byte(channel, QUERY_PRINTER, first_wait)
    if printer is None:
        return PrinterStatus.unknown(f"no answer to DLE EOT 1 within {first_wait:.1f} s")
    offline_cause = query_byte(channel, QUERY_OFFLINE_CAUSE, timeout)
    error_cause = None
    if offline_cause is not None and is_status_byte(offline_cause) and offline_cause & OFFLINE_ERROR:
        error_cause = query_byte(channel, QUERY_ERROR_CAUSE, timeout)
    paper = query_byte(channel, QUERY_PAPER, timeout) if offline_cause is not None else None
    return interpret(printer, offline_cause, paper, error_cause, drawer_open_level=drawer_open_level)


def read_drawer(channel: StatusChannel, timeout: float, *, drawer_open_level: str = "high") -> DeviceStatus:
    """Only the drawer sensor (one query)."""
    channel.discard_input()
    return drawer_state(query_byte(channel, QUERY_PRINTER, timeout), drawer_open_level)
