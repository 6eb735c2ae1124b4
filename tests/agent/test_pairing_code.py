"""Pairing codes: random, human-typeable, with a check character that catches typing mistakes."""

from __future__ import annotations

import itertools

import pytest

from broker.contract.pairing import (
    CODE_ALPHABET,
    CODE_LENGTH,
    PairingCodeError,
    check_character,
    format_pairing_code,
    new_pairing_code,
    normalize_pairing_code,
)


def test_new_codes_are_valid_random_and_unambiguous() -> None:
    codes = {new_pairing_code() for _ in range(2000)}
    assert len(codes) == 2000, "40 random bits: no repeats in 2000"
    for code in codes:
        assert len(code) == CODE_LENGTH and set(code) <= set(CODE_ALPHABET)
        assert normalize_pairing_code(code) == code
    assert not set("ILOU") & set(CODE_ALPHABET), "no letters that read as digits (or spell words)"
    seen_first = {code[0] for code in codes}
    assert len(seen_first) == 32, "every character occurs"


def test_formatting_and_forgiving_reading() -> None:
    code = "7KQ2M9XD" + check_character("7KQ2M9XD")
    assert format_pairing_code(code) == "7KQ-2M9-XDT"
    for typed in ("7kq-2m9-xdt", " 7KQ 2M9 XDT ", "7KQ2M9XDT", "7kq_2m9.xdt"):
        assert normalize_pairing_code(typed) == code, typed
    with_ones = "10" + "ABCDEF"
    code = with_ones + check_character(with_ones)
    assert normalize_pairing_code(code.replace("1", "I", 1).replace("0", "o", 1)) == code
    assert normalize_pairing_code(code.replace("1", "l", 1)) == code


def test_every_single_mistyped_character_is_caught() -> None:
    code = new_pairing_code()
    for position, wrong in itertools.product(range(CODE_LENGTH), CODE_ALPHABET):
        if code[position] == wrong:
            continue
        typo = code[:position] + wrong + code[position + 1 :]
        with pytest.raises(PairingCodeError, match="check character"):
            normalize_pairing_code(typo)


def test_swapped_neighbours_are_caught_except_0_and_z() -> None:
    """Luhn mod 32 misses exactly one swap: the first and last characters of the alphabet."""
    missed = set()
    for first, second in itertools.permutations(CODE_ALPHABET, 2):
        for position in range(CODE_LENGTH - 2):
            data = "".join(
                first if i == position else second if i == position + 1 else "A" for i in range(CODE_LENGTH - 1)
            )
            code = data + check_character(data)
            swapped = code[:position] + code[position + 1] + code[position] + code[position + 2 :]
            try:
                normalize_pairing_code(swapped)
                missed.add((first, second))
            except PairingCodeError:
                pass
    assert missed == {("0", "Z"), ("Z", "0")}


@pytest.mark.parametrize(
    "typed, problem",
    [
        ("", "9 characters, got 0"),
        ("7KQ-2M9", "9 characters, got 6"),
        ("7KQ-2M9-XDTT", "9 characters, got 10"),
        ("7KQ-2M9-XDU", "no 'U'"),
        ("7KQ-2M9-XD!", "no '!'"),
        ("x" * 40, "9 characters"),
    ],
)
def test_what_is_not_a_code_says_why(typed: str, problem: str) -> None:
    with pytest.raises(PairingCodeError, match=problem):
        normalize_pairing_code(typed)
