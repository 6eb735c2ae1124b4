"""broker.backoff: the ceiling doubles up to the cap, and each jitter rule stays inside its range."""

from __future__ import annotations

import random

import pytest

from broker.backoff import (
    MAX_DOUBLINGS,
    backoff_ceiling,
    floored_jitter_delay,
    full_jitter_delay,
    half_jitter_delay,
)


class FixedDraw(random.Random):
    """A generator whose every draw is `fraction` of the way through the asked range."""

    def __init__(self, fraction: float) -> None:
        super().__init__()
        self.fraction = fraction

    def random(self) -> float:
        return self.fraction


def test_ceiling_doubles_from_minimum_and_stops_at_maximum() -> None:
    assert [backoff_ceiling(n, 0.5, 30.0) for n in range(8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert backoff_ceiling(-1, 1.0, 300.0) == 0.5  # pairing's first failure: failures - 1 = 0, second: 1, ...
    assert backoff_ceiling(0, 5.0, 2.0) == 2.0  # a maximum below the minimum wins


def test_ceiling_doublings_are_capped_so_huge_attempt_counts_do_not_overflow() -> None:
    tiny = 1e-12
    assert backoff_ceiling(10**9, tiny, 1e30) == tiny * 2**MAX_DOUBLINGS
    assert backoff_ceiling(10**9, 0.5, 30.0) == 30.0


@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.999999])
def test_full_jitter_is_uniform_from_zero_to_the_ceiling(fraction: float) -> None:
    assert full_jitter_delay(3, 0.5, 30.0, FixedDraw(fraction)) == pytest.approx(4.0 * fraction)


@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.999999])
def test_floored_jitter_is_uniform_from_the_minimum_to_the_ceiling(fraction: float) -> None:
    assert floored_jitter_delay(3, 0.5, 30.0, FixedDraw(fraction)) == pytest.approx(0.5 + 3.5 * fraction)


def test_floored_jitter_never_goes_below_the_minimum_even_with_a_smaller_maximum() -> None:
    assert floored_jitter_delay(4, 2.0, 1.0, FixedDraw(0.7)) == 2.0


def test_floored_jitter_draws_from_the_shared_generator_by_default() -> None:
    random.seed(18)
    expected = random.uniform(0.05, 0.4)
    random.seed(18)
    assert floored_jitter_delay(3, 0.05, 10.0) == expected


@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.999999])
def test_half_jitter_is_uniform_from_half_the_ceiling_to_the_ceiling(fraction: float) -> None:
    assert half_jitter_delay(2, 1.0, 300.0, FixedDraw(fraction)) == pytest.approx(4.0 * (0.5 + 0.5 * fraction))


def test_every_rule_stays_in_its_range_over_many_draws() -> None:
    rng = random.Random(7)
    for attempt in range(40):
        ceiling = backoff_ceiling(attempt, 0.5, 30.0)
        assert 0.0 <= full_jitter_delay(attempt, 0.5, 30.0, rng) <= ceiling
        assert 0.5 <= floored_jitter_delay(attempt, 0.5, 30.0, rng) <= ceiling
        assert ceiling / 2 <= half_jitter_delay(attempt, 0.5, 30.0, rng) <= ceiling
