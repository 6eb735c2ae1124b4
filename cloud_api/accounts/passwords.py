"""Password hashing: argon2id through argon2-cffi, with its recommended parameters.

Unknown e-mails are checked against a dummy hash, so a wrong e-mail takes as long as a wrong
password and sign-in timing does not tell which addresses have accounts.
"""

from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from cloud_api.refusals import N_, Refused

MIN_LENGTH = 10
MAX_LENGTH = 256  # long enough for any passphrase; bounds the hashing work a request can ask for

_hasher = PasswordHasher()  # argon2id, RFC 9106's second recommended parameter set


def check_strength(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise Refused(
            "password.too_short",
            N_("Use at least {count} characters."),
            field="password",
            kind="invalid",
            count=MIN_LENGTH,
        )
    if len(password) > MAX_LENGTH:
        raise Refused(
            "password.too_long",
            N_("Use at most {count} characters."),
            field="password",
            kind="invalid",
            count=MAX_LENGTH,
        )


def hash_password(password: str) -> str:
    check_strength(password)
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Does `password` match `stored`? With no stored hash, a dummy one is checked (same cost)."""
    if len(password) > MAX_LENGTH:
        return False
    try:
        return _hasher.verify(stored or _dummy_hash(), password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher.hash("kassa: no such account")
