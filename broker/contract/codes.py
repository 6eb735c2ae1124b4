"""Human-typeable codes: Crockford base32 with a Luhn mod 32 check character.

Used for pairing codes (pairing.py) and licence keys (licence.py). The alphabet has no I, L,
O or U; reading is forgiving (lower case, I/L for 1, O for 0, spaces, dashes, dots and
underscores ignored). The check character catches every single mistyped character and almost
every swap of neighbours, so a typo is reported at once instead of looking like a wrong code.
"""

from __future__ import annotations

import secrets

__all__ = ["CODE_ALPHABET", "CodeError", "check_character", "group_code", "new_code", "normalize_code"]

CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_VALUES = {char: index for index, char in enumerate(CODE_ALPHABET)}
# What people type for what they read: Crockford's decoding rules.
_CONFUSABLES = str.maketrans({"I": "1", "L": "1", "O": "0"})
_SEPARATORS = str.maketrans("", "", " -_.")


class CodeError(ValueError):
    """Not a valid code; the message says what is wrong, for the person who typed it."""


def check_character(data: str) -> str:
    """The Luhn mod 32 check character of ``data`` (characters of CODE_ALPHABET)."""
    total = 0
    factor = 2
    for char in reversed(data):
        addend = factor * _VALUES[char]
        total += addend // 32 + addend % 32
        factor = 3 - factor  # 2, 1, 2, 1, ... from the right
    return CODE_ALPHABET[(32 - total % 32) % 32]


def new_code(data_length: int) -> str:
    """A fresh code in canonical form: ``data_length`` random characters and the check character."""
    data = "".join(secrets.choice(CODE_ALPHABET) for _ in range(data_length))
    return data + check_character(data)


def normalize_code(typed: object, length: int, what: str, example: str) -> str:
    """The canonical form of a typed code of ``length`` characters (check included).

    ``what`` names the code in messages ("pairing code", "licence key"); ``example`` shows
    the expected shape. Raises CodeError saying what is wrong.
    """
    if not isinstance(typed, str) or len(typed) > 2 * length + 8:
        raise CodeError(f"a {what} is {length} characters, like {example}")
    code = typed.upper().translate(_SEPARATORS).translate(_CONFUSABLES)
    wrong = sorted({char for char in code if char not in _VALUES})
    if wrong:
        raise CodeError(
            f"a {what} has no {', '.join(repr(c) for c in wrong)}: letters and digits only (U is never used)"
        )
    if len(code) != length:
        raise CodeError(f"a {what} is {length} characters, got {len(code)}")
    if check_character(code[:-1]) != code[-1]:
        raise CodeError(f"the {what}'s check character does not match: a character was mistyped")
    return code


def group_code(code: str, size: int) -> str:
    """``7KQ2M9XDT`` grouped for reading: ``7KQ-2M9-XDT`` (size 3)."""
    return "-".join(code[i : i + size] for i in range(0, len(code), size))
