"""Russian taxpayer numbers (INN): 10 digits for an organisation, 12 for a person or sole
trader, with check digits (the Federal Tax Service's published weights). A typo is caught at
the form, not months later on an invoice."""

from __future__ import annotations

_W10 = (2, 4, 10, 3, 5, 9, 4, 6, 8)
_W11 = (7, 2, 4, 10, 3, 5, 9, 4, 6, 8)
_W12 = (3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8)


def _check(digits: list[int], weights: tuple[int, ...]) -> int:
    return sum(d * w for d, w in zip(digits, weights, strict=False)) % 11 % 10


def valid_inn(value: str) -> bool:
    if not value.isascii() or not value.isdigit() or len(value) not in (10, 12):
        return False
    digits = [int(c) for c in value]
    if len(digits) == 10:
        return _check(digits, _W10) == digits[9]
    return _check(digits, _W11) == digits[10] and _check(digits, _W12) == digits[11]
