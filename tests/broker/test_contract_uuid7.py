"""The RFC 9562 UUIDv7 generator."""

import time
import uuid

import pytest

from broker.contract import is_uuid7, make_uuid7, uuid7, uuid7_unix_ms
from broker.contract.uuid7 import UUID7Generator


def test_version_and_variant_bits():
    value = uuid7()
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert (value.int >> 76) & 0xF == 0x7
    assert (value.int >> 62) & 0b11 == 0b10
    assert is_uuid7(value)
    assert not is_uuid7(uuid.uuid4())


def test_timestamp_is_the_current_unix_millisecond():
    before = time.time_ns() // 1_000_000
    value = uuid7()
    after = time.time_ns() // 1_000_000
    assert before <= uuid7_unix_ms(value) <= after


def test_ids_sort_in_creation_order_and_are_unique():
    ids = [uuid7() for _ in range(20_000)]
    assert ids == sorted(ids)
    assert ids == sorted(ids, key=str)  # the text form sorts the same way
    assert len(set(ids)) == len(ids)


def test_same_millisecond_uses_the_counter_and_rolls_into_the_next_ms():
    generator = UUID7Generator(clock_ms=lambda: 1_700_000_000_000)
    ids = [generator() for _ in range(5000)]  # more than the 12-bit counter holds
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert uuid7_unix_ms(ids[0]) == 1_700_000_000_000
    assert uuid7_unix_ms(ids[-1]) > 1_700_000_000_000
    assert all(is_uuid7(value) for value in ids)


def test_clock_stepping_back_never_produces_a_smaller_id():
    readings = iter([2_000, 1_000, 1_000, 3_000])
    generator = UUID7Generator(clock_ms=lambda: next(readings))
    ids = [generator() for _ in range(4)]
    assert ids == sorted(ids)
    assert [uuid7_unix_ms(value) for value in ids] == [2_000, 2_000, 2_000, 3_000]


def test_unix_ms_refuses_other_versions():
    with pytest.raises(ValueError):
        uuid7_unix_ms(uuid.uuid4())


def test_make_uuid7_places_each_field():
    value = make_uuid7(1_740_821_400_000, counter=0xABC, random_bits=0x2A)
    assert is_uuid7(value)
    assert uuid7_unix_ms(value) == 1_740_821_400_000
    assert (value.int >> 64) & 0xFFF == 0xABC
    assert value.int & ((1 << 62) - 1) == 0x2A
    for bad in (
        {"unix_ms": -1},
        {"unix_ms": 1 << 48},
        {"unix_ms": 0, "counter": 1 << 12},
        {"unix_ms": 0, "random_bits": 1 << 62},
    ):
        with pytest.raises(ValueError):
            make_uuid7(**bad)
