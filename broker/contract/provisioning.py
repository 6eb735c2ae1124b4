"""Configuration QR codes: what an administrator prints and a terminal's own scanner reads.

The QR holds ``KASSA-PROV1:`` followed by a signed token (kind ``provisioning``,
see signing.py) so a terminal applies only codes made by its cloud. Both sides
use this module: the cloud to make the text, the agent to check it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import Field, ValidationError

from .envelope import describe_errors
from .fields import Code, Timestamp, WireModel, text
from .signing import TokenError, sign, verify

QR_PREFIX = "KASSA-PROV1:"
TOKEN_KIND = "provisioning"


class ProvisioningError(ValueError):
    """Not a usable configuration code; the message says why (for the log and the technician)."""


class Provisioning(WireModel):
    """What a configuration code may set on a terminal. Unset fields are left alone."""

    point_of_sale: Code | None = None
    language: str | None = Field(None, pattern=r"^[a-z]{2}(-[A-Z]{2})?$")
    scanner: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    rooms: list[Annotated[str, text(60)]] | None = Field(None, max_length=50)
    broker_host: str | None = Field(None, max_length=253, pattern=r"^[A-Za-z0-9.:-]+$")
    broker_port: int | None = Field(None, ge=1, le=65535)
    issued_at: Timestamp
    expires_at: Timestamp | None = None


def make_qr_text(settings: Provisioning, private_key: Ed25519PrivateKey, key_id: str) -> str:
    return QR_PREFIX + sign(TOKEN_KIND, settings.model_dump(mode="json", exclude_none=True), private_key, key_id)


def looks_like_provisioning(scanned: str) -> bool:
    return scanned.startswith(QR_PREFIX)


def read_qr_text(
    scanned: str, trusted_keys: Mapping[str, Ed25519PublicKey], now: datetime | None = None
) -> Provisioning:
    """Verify and parse a scanned configuration code, or raise ProvisioningError."""
    if not looks_like_provisioning(scanned):
        raise ProvisioningError("not a kassa configuration code")
    try:
        payload = verify(scanned[len(QR_PREFIX) :].strip(), TOKEN_KIND, trusted_keys)
    except TokenError as exc:
        raise ProvisioningError(f"configuration code refused: {exc}") from None
    try:
        settings = Provisioning.model_validate(payload)
    except ValidationError as exc:
        # Which settings, so the technician can tell the administrator what to fix.
        raise ProvisioningError(
            f"configuration code has invalid settings ({exc.error_count()} problem(s)): {describe_errors(exc, 3)}"
        ) from None
    now = now or datetime.now(UTC)
    if settings.expires_at is not None and settings.expires_at < now:
        raise ProvisioningError(f"configuration code expired at {settings.expires_at.isoformat()}")
    return settings
