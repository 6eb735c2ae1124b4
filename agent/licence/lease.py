"""Is this lease good for a sale right now? Pure checks, no I/O, no clock reads.

Two moments, two functions:

- ``accept_token`` when a lease arrives (or is loaded from the store at start): the
  signature, the pinned cloud key, this device and its key, an epoch not below the highest
  seen for the licence, an issue time at most 5 minutes ahead of our clock. The Ed25519
  verification costs tens of microseconds, so it runs once per token, not per sale.
- ``sale_verdict`` before every sale and refund: the accepted lease is not released, not
  expired by the monotonic clock since it was received (immune to someone setting the wall
  clock back) nor by the wall clock (the only clock that survives a reboot), and the wall
  clock is not behind the latest time this device has seen (clock rolled back).

Every refusal carries a stable code and a message a cashier can act on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.i18n import N_
from broker.contract import licence as kl
from broker.contract.signing import (
    BadSignatureError,
    MalformedTokenError,
    TokenError,
    UnknownKeyError,
    WrongKindError,
)

MAX_ISSUED_AHEAD_S = 300
# Wall-clock readings may wobble this much backwards (NTP slew, a second leap) without
# counting as a rollback.
CLOCK_TOLERANCE_S = 120


class Refusal(StrEnum):
    NO_LICENCE = "licence.none"
    TAMPERED = "licence.tampered"
    UNKNOWN_SIGNER = "licence.unknown_signer"
    NOT_A_LEASE = "licence.not_a_lease"
    WRONG_DEVICE = "licence.wrong_device"
    OLD_EPOCH = "licence.old_epoch"
    ISSUED_IN_FUTURE = "licence.issued_in_future"
    EXPIRED = "licence.expired"
    CLOCK_ROLLED_BACK = "licence.clock_rolled_back"
    RELEASED = "licence.released"


# What the cashier (or the technician beside them) can do about it; translated by the POS API
# (agent/posapi/messages.py), marked for the catalogues.
_ADVICE = {
    Refusal.NO_LICENCE: N_("No licence on this terminal. Ask a technician to enter a licence key."),
    Refusal.TAMPERED: N_("The licence on this terminal is damaged. Ask a technician to enter the licence key again."),
    Refusal.UNKNOWN_SIGNER: N_(
        "The licence was not issued by a trusted kassa cloud. Ask a technician to check the terminal's trusted keys."
    ),
    Refusal.NOT_A_LEASE: N_("The licence data is not a licence. Ask a technician to enter the licence key again."),
    Refusal.WRONG_DEVICE: N_(
        "The licence belongs to another terminal. Ask a technician to enter a licence key for this one."
    ),
    Refusal.OLD_EPOCH: N_("This licence was moved to another terminal since. Ask a technician to enter a licence key."),
    Refusal.ISSUED_IN_FUTURE: N_("The terminal's clock is behind. Ask a technician to set the date and time."),
    Refusal.EXPIRED: N_(
        "The licence has run out. Connect the terminal to the network so it can renew, or ask your partner."
    ),
    Refusal.CLOCK_ROLLED_BACK: N_(
        "The terminal's clock was set back. Ask a technician to set the correct date and time."
    ),
    Refusal.RELEASED: N_("The licence was moved to another terminal. Ask a technician to enter a licence key."),
}


def advice(code: str) -> str | None:
    """What to do about a refusal code (``licence.expired``), or None for another code."""
    try:
        return _ADVICE[Refusal(code)]
    except ValueError:
        return None


class LeaseRefused(Exception):
    def __init__(self, code: Refusal, detail: str = "", *, licence_id: str | None = None) -> None:
        super().__init__(detail or _ADVICE[code])
        self.code = code
        self.detail = detail
        self.licence_id = licence_id  # the licence a genuine token names; None when it was not read


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    code: str  # "ok" or a Refusal value
    message: str
    licence_id: str | None = None
    expires_at: int | None = None

    @classmethod
    def refused(cls, code: Refusal, licence_id: str | None = None) -> Verdict:
        return cls(False, code.value, _ADVICE[code], licence_id)


@dataclass(frozen=True, slots=True)
class HeldLease:
    """An accepted lease as the device uses it."""

    claims: kl.LeaseClaims
    token: str
    received_mono: float | None  # time.monotonic() at receipt in this boot; None if from an earlier boot
    released: bool = False


def accept_token(
    token: str,
    *,
    device_id: str,
    device_key: str,
    trusted_keys: Mapping[str, Ed25519PublicKey],
    highest_epoch: int,
    now_wall: float,
) -> kl.LeaseClaims:
    """The claims of a lease this device may hold, or LeaseRefused saying why not.

    ``device_key`` is the fingerprint of this device's public key; ``highest_epoch`` the
    highest epoch this device has seen for the token's licence (0 if none). The caller
    looks the epoch up by licence id, so it reads the claims' licence id after verification.
    """
    try:
        claims = kl.read_lease(token, trusted_keys)
    except UnknownKeyError as exc:
        raise LeaseRefused(Refusal.UNKNOWN_SIGNER, str(exc)) from None
    except BadSignatureError as exc:
        raise LeaseRefused(Refusal.TAMPERED, str(exc)) from None
    except WrongKindError as exc:
        raise LeaseRefused(Refusal.NOT_A_LEASE, str(exc)) from None
    except (MalformedTokenError, TokenError) as exc:
        raise LeaseRefused(Refusal.TAMPERED, str(exc)) from None
    if claims.device_id != device_id or claims.device_key != device_key:
        raise LeaseRefused(
            Refusal.WRONG_DEVICE,
            f"lease for device {claims.device_id}, this is {device_id}",
            licence_id=claims.licence_id,
        )
    if claims.epoch < highest_epoch:
        raise LeaseRefused(
            Refusal.OLD_EPOCH,
            f"lease epoch {claims.epoch} is below {highest_epoch}, already seen",
            licence_id=claims.licence_id,
        )
    if claims.issued_at > now_wall + MAX_ISSUED_AHEAD_S:
        raise LeaseRefused(
            Refusal.ISSUED_IN_FUTURE,
            f"issued {claims.issued_at - now_wall:.0f} s ahead of this terminal's clock",
            licence_id=claims.licence_id,
        )
    return claims


def sale_verdict(
    lease: HeldLease | None,
    *,
    now_wall: float,
    now_mono: float,
    wall_high_water: float,
) -> Verdict:
    """May a sale run on ``lease`` now? ``wall_high_water`` is the latest wall-clock time this
    device has seen (persisted, raised as time goes by)."""
    if lease is None:
        return Verdict.refused(Refusal.NO_LICENCE)
    claims = lease.claims
    if lease.released:
        return Verdict.refused(Refusal.RELEASED, claims.licence_id)
    if now_wall < wall_high_water - CLOCK_TOLERANCE_S:
        return Verdict.refused(Refusal.CLOCK_ROLLED_BACK, claims.licence_id)
    if lease.received_mono is not None and now_mono - lease.received_mono >= claims.lifetime_s:
        return Verdict.refused(Refusal.EXPIRED, claims.licence_id)
    if now_wall >= claims.expires_at:
        return Verdict.refused(Refusal.EXPIRED, claims.licence_id)
    return Verdict(True, "ok", "licence valid", claims.licence_id, claims.expires_at)
