"""Is the wall clock trustworthy? Asked of the kernel, which knows whether NTP disciplines it."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

_STA_UNSYNC = 0x0040
_TIME_ERROR = 5


class _Timex(ctypes.Structure):
    # struct timex from <sys/timex.h> (x86_64/aarch64 glibc layout): mode, then longs,
    # status int at a fixed place; the tail is padding we never read.
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("_rest", ctypes.c_byte * 160),
    ]


def kernel_clock_synchronized() -> bool:
    """True when the kernel reports the clock synchronised (adjtimex(2) without STA_UNSYNC)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        timex = _Timex()
        state = libc.adjtimex(ctypes.byref(timex))
    except (OSError, AttributeError):
        return False
    if state < 0:
        return False
    return state != _TIME_ERROR and not (timex.status & _STA_UNSYNC)
