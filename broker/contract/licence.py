"""Licences on the wire: keys people type, lease tokens the cloud signs, release receipts
devices sign, and the `licence` state document.

The flow (docs/protocol.md, "Licences"):

1. A technician types a licence key on the terminal; the device sends a ``BindRequest``
   (up/licence) with the key and its Ed25519 public key.
2. The cloud binds the licence to the device (epoch + 1) and publishes the device's
   ``licence`` state document: the lease tokens it may use now. A held lease missing from a
   newer document is released: the device stops using it at once.
3. If the licence is bound elsewhere, the cloud first orders the old device to release it
   (command ``licence.release`` with licence id and epoch). The old device stops, keeps a
   tombstone and answers with a release receipt signed by its own key (in the reply and as
   an up/licence ``ReleaseReceipt``). Only then, or once the old lease has run out plus a
   clock margin, does the cloud grant the next epoch to the new device.
4. Devices send a ``LeaseReport`` on every connect and every ``renew_after_s``; the cloud
   answers by renewing the leases it still grants them (a new document), so a device that
   stays offline lets its lease run out.

Tokens are typed signatures (signing.py): a lease is kind ``licence.lease`` signed by a
cloud key (key id pinned on the device), a receipt is kind ``licence.release`` signed by the
device key under key id ``device``. Times inside tokens are whole Unix seconds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints, ValidationError

from .codes import CodeError, group_code, new_code, normalize_code
from .fields import Code, DeviceId, JsonObject, SignedToken
from .signing import MalformedTokenError, load_public_key, public_key_fingerprint, sign, verify

__all__ = [
    "DEVICE_KEY_ID",
    "LEASE_KIND",
    "LICENCE_KEY_LENGTH",
    "RELEASE_FILE_FORMAT",
    "RELEASE_KIND",
    "LeaseClaims",
    "LicenceDoc",
    "LicenceKeyError",
    "ReleaseClaims",
    "ReleaseFile",
    "format_licence_key",
    "new_licence_key",
    "normalize_licence_key",
    "read_lease",
    "read_release",
    "read_release_file",
    "release_file_text",
    "sign_lease",
    "sign_release",
]

LICENCE_KEY_DATA_LENGTH = 15  # 75 random bits: guessing is hopeless behind the rate limits
LICENCE_KEY_LENGTH = LICENCE_KEY_DATA_LENGTH + 1
LEASE_KIND = "licence.lease"
RELEASE_KIND = "licence.release"
DEVICE_KEY_ID = "device"  # receipts are verified against the device's registered key
RELEASE_FILE_FORMAT = "kassa.licence-release.v1"
MAX_LEASES_PER_DEVICE = 20

UnixSeconds = Annotated[StrictInt, Field(ge=0, le=2**40)]
Epoch = Annotated[StrictInt, Field(ge=1)]
Fingerprint = Annotated[str, StringConstraints(strict=True, pattern=r"^[0-9a-f]{64}$")]


class LicenceKeyError(CodeError):
    """Not a licence key; the message says what is wrong, for the person who typed it."""


def new_licence_key() -> str:
    """A fresh key in canonical form: 15 random characters and the check character."""
    return new_code(LICENCE_KEY_DATA_LENGTH)


def normalize_licence_key(typed: str) -> str:
    """The canonical form of a key as a person typed it, or LicenceKeyError saying why not."""
    try:
        return normalize_code(typed, LICENCE_KEY_LENGTH, "licence key", "7KQ2-M9XD-T4HB-8WZC")
    except CodeError as exc:
        raise LicenceKeyError(str(exc)) from None


def format_licence_key(key: str) -> str:
    """``7KQ2M9XDT4HB8WZC`` as people read it: ``7KQ2-M9XD-T4HB-8WZC``."""
    return group_code(key, 4)


class _Claims(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


ClaimsT = TypeVar("ClaimsT", bound=_Claims)


class LeaseClaims(_Claims):
    """What a lease token says. The device checks all of it before every sale."""

    licence_id: Code
    company_id: StrictInt
    device_id: DeviceId
    device_key: Fingerprint  # SHA-256 of the raw device public key (signing.public_key_fingerprint)
    epoch: Epoch  # raised on every new binding; a device never goes back to a lower one
    entitlements: JsonObject = Field(default_factory=dict)
    issued_at: UnixSeconds
    expires_at: UnixSeconds  # never past the licence's own expiry
    renew_after_s: StrictInt = Field(ge=1, le=7 * 86400)  # when the device reports again (hourly by default)

    @property
    def lifetime_s(self) -> int:
        return self.expires_at - self.issued_at


class ReleaseClaims(_Claims):
    """What a release receipt says: this device stopped using this licence at this epoch."""

    licence_id: Code
    device_id: DeviceId
    device_key: Fingerprint
    epoch: Epoch
    released_at: UnixSeconds


def sign_lease(claims: LeaseClaims, cloud_key: Ed25519PrivateKey, key_id: str) -> str:
    return sign(LEASE_KIND, claims.model_dump(mode="json"), cloud_key, key_id)


def read_lease(token: str, trusted_keys: Mapping[str, Ed25519PublicKey]) -> LeaseClaims:
    """The claims of a genuine lease; raises signing.TokenError (tampered, unknown key, not
    a lease) or MalformedTokenError (signed, but not lease claims)."""
    return _claims(LeaseClaims, verify(token, LEASE_KIND, trusted_keys))


def sign_release(claims: ReleaseClaims, device_key: Ed25519PrivateKey) -> str:
    return sign(RELEASE_KIND, claims.model_dump(mode="json"), device_key, DEVICE_KEY_ID)


def read_release(token: str, device_public_key: str | Ed25519PublicKey) -> ReleaseClaims:
    """The claims of a receipt signed by this device key (base64url text or key object);
    raises signing.TokenError otherwise, also when the receipt names another key."""
    key = load_public_key(device_public_key) if isinstance(device_public_key, str) else device_public_key
    claims = _claims(ReleaseClaims, verify(token, RELEASE_KIND, {DEVICE_KEY_ID: key}))
    if claims.device_key != public_key_fingerprint(key):
        raise MalformedTokenError("the receipt names another device key than the one that signed it")
    return claims


def _claims(model: type[ClaimsT], payload: dict[str, Any]) -> ClaimsT:
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise MalformedTokenError(f"signed, but not valid {model.__name__}: {where}: {first['msg']}") from None


class LicenceDoc(BaseModel):
    """The `licence` state document of one device: every lease it may use, nothing else.

    A lease the device holds that is not in the newest document (same licence, any epoch up
    to the one held) has been taken away (moved, revoked, expired in the cloud): the device
    keeps a tombstone and refuses sales on it from then on.
    """

    model_config = ConfigDict(extra="forbid")

    leases: list[SignedToken] = Field(default_factory=list, max_length=MAX_LEASES_PER_DEVICE)


class ReleaseFile(BaseModel):
    """A release receipt carried by hand (file or QR) from a device that will never be online
    again to the cloud's upload endpoint."""

    model_config = ConfigDict(extra="forbid")

    format: str = Field(RELEASE_FILE_FORMAT, pattern=f"^{RELEASE_FILE_FORMAT}$")
    device_id: DeviceId
    licence_id: Code
    epoch: Epoch
    receipt: SignedToken


def release_file_text(device_id: str, licence_id: str, epoch: int, receipt: str) -> str:
    """One line of JSON: small enough for a QR code, readable in a text editor."""
    record = ReleaseFile(device_id=device_id, licence_id=licence_id, epoch=epoch, receipt=receipt)
    return json.dumps(record.model_dump(), separators=(",", ":"))


def read_release_file(text: str | bytes) -> ReleaseFile:
    """Parse a release file; ValueError saying what is wrong (the receipt is checked by the
    cloud against the device's registered key, see read_release)."""
    try:
        return ReleaseFile.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "file"
        raise ValueError(f"not a kassa licence release file: {where}: {first['msg']}") from None
