"""Cashiers on the wire: the `cashiers` state document (the roster) and PIN hashes.

The cloud sends each device the cashiers allowed on it, as a retained, versioned
``down/state/cashiers`` document (RosterDoc). Each cashier carries its details sets, one
per point of sale (an airline session or a counter: terminal id, operator code, an optional
session label); an operator code belongs to one cashier. PINs travel only as slow salted hashes
(``scrypt``), made by the cloud when a PIN is set and checked by the device at login,
offline. The parameters live in the hash, so the cloud can raise them later and devices
verify old and new hashes alike.

Hash format: ``scrypt$<log2 N>$<r>$<p>$<salt base64url>$<hash base64url>``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from enum import StrEnum
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StrictBool,
    StringConstraints,
    model_serializer,
    model_validator,
)

from .fields import Code, text

__all__ = [
    "DEFAULT_SCRYPT",
    "PIN_PATTERN",
    "CashierDetails",
    "CashierRole",
    "OperatorCode",
    "Pin",
    "PinHash",
    "PinHashError",
    "RosterCashier",
    "RosterDoc",
    "SessionLabel",
    "check_pin_format",
    "hash_pin",
    "verify_pin",
]

PIN_PATTERN = r"^[0-9]{4,12}$"
OperatorCode = Annotated[str, StringConstraints(strict=True, pattern=r"^[0-9]{4}$")]
# Free text naming the airline session or counter a details set is for, e.g. "SU direct".
SessionLabel = Annotated[str, text(100)]
Pin = Annotated[str, StringConstraints(strict=True, pattern=PIN_PATTERN)]
PinHash = Annotated[
    str,
    StringConstraints(
        strict=True,
        max_length=200,
        pattern=r"^scrypt\$[0-9]{1,2}\$[0-9]{1,2}\$[0-9]{1,2}\$[A-Za-z0-9_-]+\$[A-Za-z0-9_-]+$",
    ),
]
# log2 N = 15, r = 8 (32 MiB), p = 2: about 130 ms on a 2-core terminal, within the 50-500 ms
# the product asks for (slow against a stolen roster, quick enough for a queue).
DEFAULT_SCRYPT = (15, 8, 2)
_LIMITS = {"log_n": (10, 20), "r": (1, 16), "p": (1, 8)}
_HASH_RE = re.compile(r"scrypt\$([0-9]+)\$([0-9]+)\$([0-9]+)\$([A-Za-z0-9_-]+)\$([A-Za-z0-9_-]+)")


class PinHashError(ValueError):
    """A stored hash this code cannot use (bad shape or parameters out of range)."""


class CashierRole(StrEnum):
    CASHIER = "cashier"  # sell
    REFUND = "refund"  # refund sales of the cashier's own till session
    ADMIN = "admin"  # refund any sale of any device
    NO_SALE = "no_sale"  # open the drawer without a sale
    VOID = "void"  # void lines / an open sale


def check_pin_format(pin: object) -> str:
    if not isinstance(pin, str) or not re.fullmatch(PIN_PATTERN, pin):
        raise ValueError("a PIN is 4 to 12 digits")
    return pin


def hash_pin(pin: str, params: tuple[int, int, int] = DEFAULT_SCRYPT, *, salt: bytes | None = None) -> str:
    """A new salted scrypt hash of ``pin`` in the wire format."""
    check_pin_format(pin)
    log_n, r, p = params
    _check_params(log_n, r, p)
    salt = salt if salt is not None else os.urandom(16)
    digest = _scrypt(pin, salt, log_n, r, p)
    return f"scrypt${log_n}${r}${p}${_b64(salt)}${_b64(digest)}"


def verify_pin(pin: str, pin_hash: str) -> bool:
    """True when ``pin`` matches; constant time in the comparison. Raises PinHashError for a
    hash it cannot use (never for a wrong PIN)."""
    match = _HASH_RE.fullmatch(pin_hash) if isinstance(pin_hash, str) else None
    if match is None:
        raise PinHashError("not a kassa PIN hash (scrypt$logN$r$p$salt$hash)")
    log_n, r, p = (int(match.group(i)) for i in (1, 2, 3))
    _check_params(log_n, r, p)
    if not isinstance(pin, str) or not re.fullmatch(PIN_PATTERN, pin):
        return False
    expected = _unb64(match.group(5))
    return hmac.compare_digest(_scrypt(pin, _unb64(match.group(4)), log_n, r, p), expected)


def _scrypt(pin: str, salt: bytes, log_n: int, r: int, p: int) -> bytes:
    n = 1 << log_n
    return hashlib.scrypt(pin.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r + (1 << 20), dklen=32)


def _check_params(log_n: int, r: int, p: int) -> None:
    for name, value in (("log_n", log_n), ("r", r), ("p", p)):
        low, high = _LIMITS[name]
        if not low <= value <= high:
            raise PinHashError(f"scrypt {name}={value} is outside {low}..{high}")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text_: str) -> bytes:
    return base64.urlsafe_b64decode(text_ + "=" * (-len(text_) % 4))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CashierDetails(_Model):
    """One set of details: what a sale at this point of sale carries for this cashier.

    `operator_code` is always the code to use (the cloud fills in the cashier's own when the
    set names none). `session_label` is optional and left out of the document when absent,
    so a roster without labels stays readable by agents that predate the field.
    """

    point_of_sale: Code  # the point of sale's code (PointOfSale.code in the cloud)
    terminal_id: Code
    operator_code: OperatorCode
    session_label: SessionLabel | None = None

    @model_serializer(mode="wrap")
    def _without_absent_label(self, handler: SerializerFunctionWrapHandler) -> dict[str, object]:
        data: dict[str, object] = handler(self)
        if data.get("session_label") is None:
            data.pop("session_label", None)
        return data


class RosterCashier(_Model):
    cashier_id: Code  # the cashier code people type at login
    name: Annotated[str, text(200)]
    operator_code: OperatorCode  # may be typed instead of the cashier code
    pin_hash: PinHash | None = None  # None: no PIN set yet, the cashier cannot log in
    roles: list[CashierRole] = Field(min_length=1, max_length=8)
    enabled: StrictBool = True
    details: list[CashierDetails] = Field(default_factory=list, max_length=50)


class RosterDoc(_Model):
    """The `cashiers` state document: every cashier allowed on this device."""

    cashiers: list[RosterCashier] = Field(default_factory=list, max_length=2000)

    @model_validator(mode="after")
    def _codes_unique(self) -> RosterDoc:
        ids = [cashier.cashier_id for cashier in self.cashiers]
        codes = [cashier.operator_code for cashier in self.cashiers]
        if len(set(ids)) != len(ids):
            raise ValueError("cashier ids repeat in the roster")
        if len(set(codes)) != len(codes):
            raise ValueError("operator codes repeat in the roster")
        # A cashier may use one code in several details sets; two cashiers never share one.
        owner: dict[str, str] = {}
        for cashier in self.cashiers:
            for code in {cashier.operator_code, *(d.operator_code for d in cashier.details)}:
                other = owner.setdefault(code, cashier.cashier_id)
                if other != cashier.cashier_id:
                    raise ValueError(f"operator code {code} belongs to two cashiers ({other}, {cashier.cashier_id})")
        return self
