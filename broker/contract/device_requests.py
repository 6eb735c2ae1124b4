"""HTTP requests a paired device makes to the cloud API, signed with its identity key.

The device proves who it is the way a pairing poll does (broker/contract/pairing.py): a typed
token signed with its Ed25519 identity key (key id = device id) over what it asks for and
when; the cloud checks it against the key the device registered (`devices.public_key`). No
bearer token is stored on the device.

Sale lookup (``POST /device-api/sales/lookup``): an ``admin`` cashier on one terminal refunds
a sale made on another terminal of the same company. The terminal asks the cloud for that
sale and what was already refunded of it (per refund, its lines and payments, so the terminal
never pays back by a method more than the sale took by it). The reply holds only sales of
devices of the asking device's company; any other sale id is answered 404 ``not_found``, as
one the cloud never received. The token names the device, the sale and the time; it is accepted within
``MAX_CLOCK_SKEW`` of the cloud's clock (the device signs with the cloud's time as known
from the HTTP ``Date`` header when its own clock is off).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .fields import DeviceId, SignedToken, Timestamp, WireModel
from .pairing import MAX_CLOCK_SKEW
from .sales import RefundScope, Sale
from .signing import TokenError, load_public_key, sign, verify

__all__ = [
    "MAX_CLOCK_SKEW",
    "SALE_LOOKUP_KIND",
    "SALE_LOOKUP_PATH",
    "DeviceProofError",
    "LookupRefund",
    "LookupRefundLine",
    "LookupRefundPayment",
    "SaleLookupReply",
    "SaleLookupRequest",
    "sale_lookup_request",
    "verify_sale_lookup",
]

SALE_LOOKUP_KIND = "device.sale_lookup"
SALE_LOOKUP_PATH = "/device-api/sales/lookup"


class DeviceProofError(ValueError):
    """A signed device request that must not be trusted. ``reason`` is a stable word:
    ``bad_signature``, ``proof_mismatch`` or ``clock_skew``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class SaleLookupRequest(WireModel):
    """``POST /device-api/sales/lookup``: a paired device asks for a sale of its company."""

    device_id: DeviceId
    sale_id: uuid.UUID
    proof: SignedToken = Field(
        description="A device.sale_lookup token signed with the identity key (kid = device id) "
        "over device_id, sale_id and issued_at."
    )


class _Reply(BaseModel):
    # Replies may grow within version 1: devices ignore keys they do not know.
    model_config = ConfigDict(extra="ignore", frozen=True)


class LookupRefundLine(_Reply):
    line_index: int = Field(ge=0, description="the sale's line (0-based)")
    qty_milli: int
    amount: int


class LookupRefundPayment(_Reply):
    method: str = Field(description="cash, card or other (a device ignores a method it does not know)")
    amount: int = Field(description="paid out by this method, in minor units")
    reference: str | None = None


class LookupRefund(_Reply):
    refund_id: uuid.UUID
    device_id: str = Field(description="the device the refund was made on")
    scope: RefundScope
    amount: int
    lines: list[LookupRefundLine] = Field(description="refunded lines (empty for a whole-receipt refund)")
    payments: list[LookupRefundPayment] = Field(
        default_factory=list,
        description="how the money went back, as the refund's device reported it "
        "(missing in replies of clouds older than this field: read as an empty list)",
    )
    cashier_id: str
    till_session_id: uuid.UUID
    receipt_no: int | None = Field(None, description="the refund receipt's number, when the device sent it")
    refunded_at: Timestamp


class SaleLookupReply(_Reply):
    device_id: str = Field(description="the device that made the sale (a refund names it as original_device_id)")
    sold_at: Timestamp
    sale: Sale = Field(description="the sale exactly as its device reported it (up.sale body)")
    refunds: list[LookupRefund] = Field(description="refunds of the sale the cloud has, oldest first")
    refunded_amount: int = Field(description="sum of the refunds' amounts")
    refunded_lines: list[LookupRefundLine] = Field(
        description=(
            "per sale line, the quantity and amount refunded by line refunds (lines never refunded are left out)"
        )
    )
    whole_refunded: bool = Field(description="a whole-receipt refund of the sale exists")


def _stamp(now: datetime) -> str:
    return now.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def sale_lookup_request(device_id: str, identity_key: Any, sale_id: uuid.UUID, now: datetime) -> SaleLookupRequest:
    """What the device sends; ``now`` should be the cloud's time as far as known.
    ``identity_key`` is the device's Ed25519PrivateKey."""
    payload = {"device_id": device_id, "sale_id": str(sale_id), "issued_at": _stamp(now)}
    proof = sign(SALE_LOOKUP_KIND, payload, identity_key, device_id)
    return SaleLookupRequest(device_id=device_id, sale_id=sale_id, proof=proof)


def verify_sale_lookup(request: SaleLookupRequest, identity_key: str, now: datetime) -> None:
    """Check that the holder of the device's registered identity key (base64url text) signed
    exactly this lookup, recently; raise DeviceProofError otherwise."""
    try:
        payload = verify(request.proof, SALE_LOOKUP_KIND, {request.device_id: load_public_key(identity_key)})
    except TokenError as exc:
        raise DeviceProofError(
            "bad_signature", f"the proof is not signed by the device's identity key: {exc}"
        ) from None
    expected = {"device_id": request.device_id, "sale_id": str(request.sale_id)}
    if {key: payload.get(key) for key in expected} != expected or set(payload) != {*expected, "issued_at"}:
        raise DeviceProofError("proof_mismatch", "the proof does not sign this device id and sale id")
    try:
        issued = datetime.fromisoformat(str(payload["issued_at"]).replace("Z", "+00:00"))
    except ValueError:
        raise DeviceProofError("proof_mismatch", "the proof has no valid issued_at") from None
    if issued.tzinfo is None:
        raise DeviceProofError("proof_mismatch", "the proof's issued_at has no UTC offset")
    if abs(issued - now) > MAX_CLOCK_SKEW:
        raise DeviceProofError(
            "clock_skew",
            f"the proof was made at {_stamp(issued)} but the cloud's time is {_stamp(now)}; "
            "sign with the time of the HTTP Date header",
        )
