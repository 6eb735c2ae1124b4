"""Constrained field types shared by every schema: money, ids, names, text, timestamps."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictInt,
    StringConstraints,
)

from .topics import check_device_id
from .uuid7 import is_uuid7

__all__ = [
    "MAX_MINOR_UNITS",
    "BasisPoints",
    "Code",
    "CurrencyCode",
    "DeviceId",
    "DottedName",
    "JsonObject",
    "MessageId",
    "MilliQuantity",
    "MinorUnits",
    "PositiveMinorUnits",
    "PublicKeyText",
    "Seq",
    "SignedToken",
    "Timestamp",
    "WireModel",
    "text",
]

# Below 2**53 so a JavaScript client reads every amount exactly; far above any real receipt.
MAX_MINOR_UNITS = 10**15
# The largest integer a SQLite INTEGER or a PostgreSQL BIGINT holds: numbers that are stored are capped here.
MAX_STORED_INT = 2**63 - 1
MAX_SEQ = MAX_STORED_INT


class WireModel(BaseModel):
    """Base for every schema: unknown fields are an error and parsed values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _integer_only(value: Any) -> Any:
    # StrictInt would refuse floats too; this says why, in the words a client developer needs.
    if isinstance(value, float):
        raise ValueError("must be an integer (money and quantities are never floats)")
    return value


def _to_utc_millis(value: datetime) -> datetime:
    try:
        value = value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is in year 0 in UTC: a ValueError, so pydantic refuses it
        raise ValueError("timestamp is outside the years 1-9999 in UTC") from None
    return value.replace(microsecond=value.microsecond - value.microsecond % 1000)


def _iso_text_only(value: Any) -> Any:
    # Lax pydantic would read a bare number as Unix seconds; the wire format is ISO 8601 text.
    if isinstance(value, (int, float)):
        raise ValueError("timestamps are ISO 8601 strings with a UTC offset")
    return value


def _format_timestamp(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _check_uuid7(value: uuid.UUID) -> uuid.UUID:
    if not is_uuid7(value):
        raise ValueError("message ids are UUIDv7 (RFC 9562)")
    return value


def _finite_json(value: Any) -> Any:
    # NaN and infinity have no JSON spelling; refusing them here keeps encode() lossless.
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError("NaN and infinity are not JSON values")
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return value


def text(max_length: int) -> StringConstraints:
    """Human text of 1..max_length characters without control characters, as the constraints
    of a field: `Annotated[str, text(200)]` (written out so that type checkers see a `str`)."""
    return StringConstraints(strict=True, min_length=1, max_length=max_length, pattern=r"^[^\x00-\x1f\x7f]+$")


MinorUnits = Annotated[StrictInt, BeforeValidator(_integer_only), Field(ge=0, le=MAX_MINOR_UNITS)]
PositiveMinorUnits = Annotated[StrictInt, BeforeValidator(_integer_only), Field(gt=0, le=MAX_MINOR_UNITS)]
# Quantities in thousandths of a unit: 1 piece = 1000, 250 g sold by the kg = 250.
MilliQuantity = Annotated[StrictInt, BeforeValidator(_integer_only), Field(gt=0, le=10**9)]
BasisPoints = Annotated[StrictInt, BeforeValidator(_integer_only), Field(ge=0, le=10_000)]
Seq = Annotated[StrictInt, Field(ge=1, le=MAX_SEQ)]
CurrencyCode = Annotated[str, StringConstraints(strict=True, pattern=r"^[A-Z]{3}$")]
DeviceId = Annotated[str, StringConstraints(strict=True), AfterValidator(check_device_id)]
# Opaque ids issued by people or other systems (cashier code, SKU, point of sale id).
Code = Annotated[
    str,
    StringConstraints(strict=True, min_length=1, max_length=64, pattern=r"^[^\s\x00-\x1f\x7f]+$"),
]
DottedName = Annotated[
    str,
    StringConstraints(strict=True, max_length=64, pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$"),
]
MessageId = Annotated[uuid.UUID, AfterValidator(_check_uuid7)]
Timestamp = Annotated[
    AwareDatetime,
    BeforeValidator(_iso_text_only),
    AfterValidator(_to_utc_millis),
    PlainSerializer(_format_timestamp, return_type=str, when_used="json"),
]
JsonObject = Annotated[dict[str, Any], AfterValidator(_finite_json)]

# A compact signed token (see signing.py): base64url(body) "." base64url(signature).
SignedToken = Annotated[
    str,
    StringConstraints(strict=True, max_length=8192, pattern=r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$"),
]
# A raw 32-byte Ed25519 public key, base64url without padding.
PublicKeyText = Annotated[str, StringConstraints(strict=True, pattern=r"^[A-Za-z0-9_-]{43}$")]
