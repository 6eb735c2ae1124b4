"""Pairing a terminal with the cloud: the pairing code and the signed HTTP requests.

Both sides use this module: the agent makes a code and signs its requests, the cloud checks
them. The flow (docs/cloud-api.md, "Pairing"):

1. The device registers: its id, its Ed25519 identity public key, a CSR for its broker
   client certificate (CN = device id) and a pairing code it made up. The request carries a
   proof: a ``pairing.register`` token signed with the identity key over all of that.
2. A company admin types the code shown by the terminal; the cloud signs the CSR.
3. The device polls with ``pairing.poll`` tokens signed by the same identity key and gets
   its certificate. No secret ever travels: both private keys stay on the device.
4. Before the certificate runs out, the paired device asks for a new one with a CSR for the
   same broker key and a ``pairing.renew`` token signed by its identity key.

Pairing codes are Crockford base32 (no I, L, O, U), 8 random characters (40 bits) plus a
Luhn mod 32 check character that catches every single mistyped character and almost every
swap of neighbours. Reading is forgiving: lower case, I/L for 1, O for 0, spaces and dashes.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from .codes import CODE_ALPHABET, CodeError, check_character, group_code, new_code, normalize_code
from .fields import DeviceId, PublicKeyText, SignedToken, Timestamp, WireModel
from .signing import TokenError, load_public_key, public_key_text, sign, verify

__all__ = [
    "CODE_ALPHABET",
    "CODE_LENGTH",
    "MAX_CLOCK_SKEW",
    "POLL_KIND",
    "REGISTER_KIND",
    "RENEW_KIND",
    "BrokerCredentials",
    "PairingCode",
    "PairingCodeError",
    "PairingProofError",
    "PollReply",
    "PollRequest",
    "Registration",
    "RegistrationRequest",
    "RegistrationState",
    "RenewalRequest",
    "check_character",
    "format_pairing_code",
    "new_pairing_code",
    "normalize_pairing_code",
    "poll_request",
    "registration_request",
    "renewal_request",
    "verify_poll",
    "verify_registration",
    "verify_renewal",
]

CODE_DATA_LENGTH = 8
CODE_LENGTH = CODE_DATA_LENGTH + 1

REGISTER_KIND = "pairing.register"
POLL_KIND = "pairing.poll"
RENEW_KIND = "pairing.renew"
# A device's signed request is accepted this far from the cloud's clock. Devices sign with
# the cloud's time (from the HTTP Date header), so a terminal with a wrong clock still pairs.
MAX_CLOCK_SKEW = timedelta(minutes=15)
MAX_CSR_LENGTH = 4096


class PairingCodeError(CodeError):
    """Not a pairing code; the message says what is wrong, for the person who typed it."""


class PairingProofError(ValueError):
    """A signed pairing request that must not be trusted. ``reason`` is a stable word."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


# ------------------------------------------------------------------ pairing codes
def new_pairing_code() -> str:
    """A fresh code in canonical form: 8 random characters and the check character."""
    return new_code(CODE_DATA_LENGTH)


def normalize_pairing_code(typed: str) -> str:
    """The canonical form of a code as a person typed it, or PairingCodeError saying why not."""
    try:
        return normalize_code(typed, CODE_LENGTH, "pairing code", format_pairing_code("7KQ2M9XDT"))
    except CodeError as exc:
        raise PairingCodeError(str(exc)) from None


def format_pairing_code(code: str) -> str:
    """``7KQ2M9XDT`` as people read it: ``7KQ-2M9-XDT``."""
    return group_code(code, 3)


def _canonical_code(value: str) -> str:
    try:
        return normalize_pairing_code(value)
    except PairingCodeError as exc:
        raise ValueError(str(exc)) from None


PairingCode = Annotated[str, StringConstraints(strict=True, max_length=32), AfterValidator(_canonical_code)]
CsrPem = Annotated[
    str,
    StringConstraints(
        strict=True,
        max_length=MAX_CSR_LENGTH,
        pattern=r"^-----BEGIN CERTIFICATE REQUEST-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE REQUEST-----\n?$",
    ),
]
CertificatePem = Annotated[str, StringConstraints(max_length=64 * 1024)]


# ---------------------------------------------------------------- HTTP bodies
class RegistrationState(StrEnum):
    PENDING = "pending"  # waiting for a company admin to claim the code
    CLAIMED = "claimed"  # claimed: the certificate is ready


class RegistrationRequest(WireModel):
    """``POST /pairing/registrations``: a device asks to be paired."""

    device_id: DeviceId
    identity_key: PublicKeyText = Field(
        description="The device's Ed25519 identity public key (base64url, 43 characters)."
    )
    csr: CsrPem = Field(
        description="PEM certificate signing request for the broker client certificate; CN = device id, EC P-256 key."
    )
    pairing_code: PairingCode = Field(description="The code the terminal shows; dashes and case do not matter.")
    proof: SignedToken = Field(description="A pairing.register token signed with the identity key (kid = device id).")


class PollRequest(WireModel):
    """``POST /pairing/poll``: a registered device asks whether it was claimed."""

    device_id: DeviceId
    proof: SignedToken = Field(description="A pairing.poll token signed with the identity key (kid = device id).")


class RenewalRequest(WireModel):
    """``POST /pairing/renewals``: a paired device asks for a new broker certificate."""

    device_id: DeviceId
    csr: CsrPem = Field(
        description="PEM CSR for the new certificate (CN = device id, EC P-256; the same key may be kept)."
    )
    proof: SignedToken = Field(
        description="A pairing.renew token signed with the identity key the device was paired with (kid = device id)."
    )


class _Reply(BaseModel):
    # Replies may grow within version 1: devices ignore keys they do not know.
    model_config = ConfigDict(extra="ignore", frozen=True)


class Registration(_Reply):
    device_id: str
    state: RegistrationState
    pairing_code: str = Field(description="Canonical code, e.g. 7KQ2M9XDT (shown as 7KQ-2M9-XDT).")
    expires_at: Timestamp | None = Field(None, description="An unclaimed registration is forgotten after this.")
    poll_interval_s: float = Field(
        ge=0, allow_inf_nan=False, description="How long the device should wait between polls."
    )


class BrokerCredentials(_Reply):
    certificate: CertificatePem = Field(description="The device's broker client certificate (PEM), CN = device id.")
    ca_certificate: CertificatePem = Field(description="The CA that signed it (PEM).")
    broker_ca_certificates: CertificatePem = Field(
        description="CA bundle (PEM) that signed the broker's server certificate."
    )
    broker_host: str
    broker_port: int = Field(ge=1, le=65535)
    point_of_sale: str | None = Field(None, description="Code of the point of sale the device was claimed into.")


class PollReply(_Reply):
    device_id: str
    state: RegistrationState
    pairing_code: str
    expires_at: Timestamp | None = None
    poll_interval_s: float = Field(ge=0, allow_inf_nan=False)
    credentials: BrokerCredentials | None = Field(None, description="Present once claimed.")


# -------------------------------------------------------------- signed proofs
def _csr_digest(csr: str) -> str:
    return hashlib.sha256(csr.encode()).hexdigest()


def _stamp(now: datetime) -> str:
    return now.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def registration_request(
    device_id: str, identity_key: Ed25519PrivateKey, csr: str, pairing_code: str, now: datetime
) -> RegistrationRequest:
    """What the device sends to register; ``now`` should be the cloud's time as far as known."""
    identity = public_key_text(identity_key.public_key())
    payload = {
        "device_id": device_id,
        "identity_key": identity,
        "csr_sha256": _csr_digest(csr),
        "pairing_code": pairing_code,
        "issued_at": _stamp(now),
    }
    proof = sign(REGISTER_KIND, payload, identity_key, device_id)
    return RegistrationRequest(
        device_id=device_id, identity_key=identity, csr=csr, pairing_code=pairing_code, proof=proof
    )


def poll_request(device_id: str, identity_key: Ed25519PrivateKey, now: datetime) -> PollRequest:
    proof = sign(POLL_KIND, {"device_id": device_id, "issued_at": _stamp(now)}, identity_key, device_id)
    return PollRequest(device_id=device_id, proof=proof)


def renewal_request(device_id: str, identity_key: Ed25519PrivateKey, csr: str, now: datetime) -> RenewalRequest:
    payload = {"device_id": device_id, "csr_sha256": _csr_digest(csr), "issued_at": _stamp(now)}
    return RenewalRequest(device_id=device_id, csr=csr, proof=sign(RENEW_KIND, payload, identity_key, device_id))


def verify_registration(request: RegistrationRequest, now: datetime) -> None:
    """Check that the identity key's owner signed exactly this registration, recently."""
    expected = {
        "device_id": request.device_id,
        "identity_key": request.identity_key,
        "csr_sha256": _csr_digest(request.csr),
        "pairing_code": request.pairing_code,
    }
    _check_proof(
        request.proof,
        REGISTER_KIND,
        request.identity_key,
        expected,
        now,
        "the proof does not sign this registration's device id, key, CSR and code",
    )


def verify_poll(request: PollRequest, identity_key: str, now: datetime) -> None:
    """Check that the holder of the registered identity key signed this poll, recently."""
    _check_proof(
        request.proof,
        POLL_KIND,
        identity_key,
        {"device_id": request.device_id},
        now,
        "the proof does not name this device",
    )


def verify_renewal(request: RenewalRequest, identity_key: str, now: datetime) -> None:
    """Check that the holder of the device's registered identity key signed exactly this CSR, recently."""
    _check_proof(
        request.proof,
        RENEW_KIND,
        identity_key,
        {"device_id": request.device_id, "csr_sha256": _csr_digest(request.csr)},
        now,
        "the proof does not sign this renewal's device id and CSR",
    )


def _check_proof(
    token: str, kind: str, identity_key: str, expected: dict[str, str], now: datetime, mismatch: str
) -> None:
    """A `kind` token signed by `identity_key` (kid = the device id) whose payload is exactly
    `expected` plus a recent `issued_at`; else PairingProofError."""
    payload = _verified(token, kind, expected["device_id"], identity_key)
    if {key: payload.get(key) for key in expected} != expected or set(payload) != {*expected, "issued_at"}:
        raise PairingProofError("proof_mismatch", mismatch)
    _check_fresh(payload, now)


def _verified(token: str, kind: str, device_id: str, identity_key: str) -> dict[str, Any]:
    try:
        return verify(token, kind, {device_id: load_public_key(identity_key)})
    except TokenError as exc:
        raise PairingProofError(
            "bad_signature", f"the proof is not signed by the device's identity key: {exc}"
        ) from None


def _check_fresh(payload: dict[str, Any], now: datetime) -> None:
    try:
        issued = datetime.fromisoformat(str(payload["issued_at"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        raise PairingProofError("proof_mismatch", "the proof has no valid issued_at") from None
    if issued.tzinfo is None:
        raise PairingProofError("proof_mismatch", "the proof's issued_at has no UTC offset")
    if abs(issued - now) > MAX_CLOCK_SKEW:
        raise PairingProofError(
            "clock_skew",
            f"the proof was made at {_stamp(issued)} but the cloud's time is {_stamp(now)}; "
            "sign with the time of the HTTP Date header",
        )
