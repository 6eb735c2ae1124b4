"""Is the wall clock trustworthy? Asked of the kernel, which knows whether NTP disciplines it."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
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


@functools.cache
def _libc() -> ctypes.CDLL:
    # find_library forks ldconfig: once per process, not once per message (it cost ~1 ms a sale).
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def kernel_clock_synchronized() -> bool:
    """True when the kernel reports the clock synchronised (adjtimex(2) without STA_UNSYNC)."""
    try:
        libc = _libc()
        timex = _Timex()
        state = libc.adjtimex(ctypes.byref(timex))
    except (OSError, AttributeError):
        return False
    if state < 0:
        return False
    return state != _TIME_ERROR and not (timex.status & _STA_UNSYNC)
