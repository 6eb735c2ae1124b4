"""One normalised status vocabulary for every device kassa drives.

Every driver reports a :class:`DeviceStatus`; each status carries a
:class:`Severity` so callers can sort, alert and decide ("can I print?")
without knowing which hardware produced it.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


class Severity(enum.IntEnum):
    OK = 0
    INFO = 1
    WARNING = 2
    ERROR = 3


class DeviceStatus(str, enum.Enum):
    READY = "ready"
    OFFLINE = "offline"
    COVER_OPEN = "cover_open"
    PAPER_NEAR_END = "paper_near_end"
    PAPER_OUT = "paper_out"
    DRAWER_OPEN = "drawer_open"
    DRAWER_CLOSED = "drawer_closed"
    UNKNOWN = "unknown"

    @property
    def severity(self) -> Severity:
        return _SEVERITY[self]

    @property
    def rank(self) -> int:
        """Order among statuses of equal severity: the more specific cause wins."""
        return _RANK[self]

    @property
    def blocks_printing(self) -> bool:
        return self.severity >= Severity.ERROR


_SEVERITY = {
    DeviceStatus.READY: Severity.OK,
    DeviceStatus.DRAWER_CLOSED: Severity.OK,
    DeviceStatus.DRAWER_OPEN: Severity.INFO,
    DeviceStatus.PAPER_NEAR_END: Severity.WARNING,
    DeviceStatus.COVER_OPEN: Severity.ERROR,
    DeviceStatus.PAPER_OUT: Severity.ERROR,
    DeviceStatus.OFFLINE: Severity.ERROR,
    DeviceStatus.UNKNOWN: Severity.ERROR,
}

# A cover that is open also makes the printer report "offline"; the cause a
# technician can act on (close the cover, load paper) is ranked first.
_RANK = {
    DeviceStatus.COVER_OPEN: 4,
    DeviceStatus.PAPER_OUT: 3,
    DeviceStatus.OFFLINE: 2,
    DeviceStatus.UNKNOWN: 1,
    DeviceStatus.PAPER_NEAR_END: 1,
    DeviceStatus.DRAWER_OPEN: 1,
    DeviceStatus.READY: 0,
    DeviceStatus.DRAWER_CLOSED: 0,
}


def most_severe(statuses: Iterable[DeviceStatus]) -> DeviceStatus:
    """The status that best explains the device's state (READY when empty)."""
    best = DeviceStatus.READY
    for status in statuses:
        if (status.severity, status.rank) > (best.severity, best.rank):
            best = status
    return best


@dataclass(frozen=True)
class PrinterStatus:
    """A printer's state at one moment.

    ``status`` is the single most severe printer condition; ``conditions``
    holds all of them (a printer can be both cover-open and paper-out).
    The drawer is reported separately because an open drawer never stops
    printing.
    """

    status: DeviceStatus
    conditions: frozenset[DeviceStatus] = frozenset()
    drawer: DeviceStatus = DeviceStatus.UNKNOWN
    details: tuple[str, ...] = ()
    raw: bytes = b""
    checked_at: float = field(default_factory=time.time)

    @property
    def severity(self) -> Severity:
        return self.status.severity

    @property
    def can_print(self) -> bool:
        return not self.status.blocks_printing

    @classmethod
    def unknown(cls, detail: str, raw: bytes = b"") -> PrinterStatus:
        return cls(DeviceStatus.UNKNOWN, frozenset({DeviceStatus.UNKNOWN}), details=(detail,), raw=raw)

    @classmethod
    def offline(cls, detail: str) -> PrinterStatus:
        return cls(DeviceStatus.OFFLINE, frozenset({DeviceStatus.OFFLINE}), details=(detail,))

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "severity": self.severity.name.lower(),
            "conditions": sorted(c.value for c in self.conditions),
            "drawer": self.drawer.value,
            "details": list(self.details),
            "raw": self.raw.hex(),
            "checked_at": self.checked_at,
        }
