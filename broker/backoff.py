"""Capped exponential backoff with jitter, for every client that retries a broker or the cloud.

The ceiling of a wait doubles from `minimum` with each of `doublings` (the caller says how its
failure count maps to doublings) and never exceeds `maximum`. The wait itself is drawn at
random below that ceiling, so clients that failed together (a broker restart drops every
terminal of a site at once) do not come back together. Three jitter rules are in use, each
named for where its draw starts:

- `full_jitter_delay`: uniform in [0, ceiling]; the first retry may be immediate.
- `floored_jitter_delay`: uniform in [minimum, ceiling]; never sooner than `minimum`.
- `half_jitter_delay`: uniform in [ceiling / 2, ceiling]; at least half the ceiling.
"""

from __future__ import annotations

import random

__all__ = ["MAX_DOUBLINGS", "backoff_ceiling", "floored_jitter_delay", "full_jitter_delay", "half_jitter_delay"]

# Only an overflow guard: 2**30 times any sensible minimum is far above any maximum.
MAX_DOUBLINGS = 30


def backoff_ceiling(doublings: int, minimum: float, maximum: float) -> float:
    """`minimum` doubled `doublings` times (halved once for -1), capped at `maximum`."""
    return min(maximum, minimum * 2.0 ** min(doublings, MAX_DOUBLINGS))


def full_jitter_delay(doublings: int, minimum: float, maximum: float, rng: random.Random) -> float:
    """A wait uniform in [0, ceiling]."""
    return rng.uniform(0.0, backoff_ceiling(doublings, minimum, maximum))


def floored_jitter_delay(doublings: int, minimum: float, maximum: float, rng: random.Random | None = None) -> float:
    """A wait uniform in [minimum, ceiling] (just `minimum` where `maximum` is below it); drawn
    from the `random` module's shared generator unless `rng` is given."""
    ceiling = backoff_ceiling(doublings, minimum, maximum)
    uniform = random.uniform if rng is None else rng.uniform
    return uniform(minimum, max(minimum, ceiling))


def half_jitter_delay(doublings: int, minimum: float, maximum: float, rng: random.Random) -> float:
    """A wait uniform in [ceiling / 2, ceiling]."""
    return backoff_ceiling(doublings, minimum, maximum) * rng.uniform(0.5, 1.0)
