"""UUID version 7 (RFC 9562 section 5.7): time-ordered ids for every message.

Layout, most significant bit first:
    48 bits  Unix time in milliseconds
     4 bits  version (0b0111)
    12 bits  sub-millisecond counter (RFC 9562 section 6.2, method 1)
     2 bits  variant (0b10)
    62 bits  random

The counter starts at a random value in the lower half of its range each millisecond, so ids
made in the same millisecond still sort in creation order and stay hard to guess. When the
counter runs out, or the wall clock steps back, the timestamp is carried forward by one
millisecond instead (section 6.2 allows this), so ids from one generator never go backwards.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable

__all__ = ["UUID7Generator", "is_uuid7", "make_uuid7", "uuid7", "uuid7_unix_ms"]

_MAX_UNIX_MS = (1 << 48) - 1
_COUNTER_BITS = 12
_COUNTER_MAX = (1 << _COUNTER_BITS) - 1
_COUNTER_SEED_LIMIT = 1 << (_COUNTER_BITS - 1)
_RANDOM_BITS = 62
_RANDOM_MASK = (1 << _RANDOM_BITS) - 1
_VERSION_BITS = 0x7 << 76
_VARIANT_BITS = 0b10 << 62


class UUID7Generator:
    """Thread-safe source of strictly increasing UUIDv7 values."""

    def __init__(self, clock_ms: Callable[[], int] | None = None) -> None:
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._lock = threading.Lock()
        self._last_ms = -1
        self._counter = 0

    def __call__(self) -> uuid.UUID:
        # One read of the system CSPRNG per id: 62 random bits and an 11-bit counter seed
        # (the outbox makes an id inside every sale, so this is on the commit path).
        entropy = int.from_bytes(os.urandom(10), "big")
        with self._lock:
            now_ms = self._clock_ms()
            if now_ms > self._last_ms:
                self._last_ms = now_ms
                self._counter = entropy >> _RANDOM_BITS & (_COUNTER_SEED_LIMIT - 1)
            elif self._counter < _COUNTER_MAX:
                self._counter += 1
            else:
                self._last_ms += 1
                self._counter = entropy >> _RANDOM_BITS & (_COUNTER_SEED_LIMIT - 1)
            unix_ms, counter = self._last_ms, self._counter
        if unix_ms > _MAX_UNIX_MS:
            raise ValueError(f"timestamp {unix_ms} ms does not fit in 48 bits")
        return uuid.UUID(
            int=(unix_ms << 80) | _VERSION_BITS | (counter << 64) | _VARIANT_BITS | (entropy & _RANDOM_MASK)
        )


def make_uuid7(unix_ms: int, counter: int = 0, random_bits: int = 0) -> uuid.UUID:
    """Assemble a UUIDv7 from its fields; fixed fields give reproducible ids for examples."""
    if not 0 <= unix_ms <= _MAX_UNIX_MS:
        raise ValueError(f"timestamp {unix_ms} ms does not fit in 48 bits")
    if not 0 <= counter <= _COUNTER_MAX or not 0 <= random_bits < 1 << _RANDOM_BITS:
        raise ValueError("counter is 12 bits and random_bits 62 bits")
    value = (unix_ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | random_bits
    return uuid.UUID(int=value)


_default_generator = UUID7Generator()


def uuid7() -> uuid.UUID:
    """Return a new UUIDv7, greater than every one this process made before."""
    return _default_generator()


def is_uuid7(value: uuid.UUID) -> bool:
    """True when `value` carries the RFC 9562 variant and version 7."""
    return value.variant == uuid.RFC_4122 and value.version == 7


def uuid7_unix_ms(value: uuid.UUID) -> int:
    """The Unix time in milliseconds embedded in a UUIDv7."""
    if not is_uuid7(value):
        raise ValueError(f"{value} is not a UUIDv7")
    return value.int >> 80
