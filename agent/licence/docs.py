"""Applying the cloud's ``licence`` state document: which leases the device holds from now on.

Runs inside the inbound transaction that records the document's version; the new leases
take effect in memory only after that transaction committed (``Licence._after_state``).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from agent.cloud.outbox import Outbox
from agent.licence import store as db
from agent.licence.lease import HeldLease, LeaseRefused, Refusal, Verdict
from agent.licence.release import Releaser
from broker import contract as kc

log = logging.getLogger(__name__)

# Refusals that leave the token's licence unknown: the document may still list a lease we
# hold in a form we cannot read, so missing leases are not released on such a document
# (safe either way: the cloud grants elsewhere only after a receipt or the lease's expiry).
UNREADABLE = frozenset({Refusal.TAMPERED, Refusal.UNKNOWN_SIGNER, Refusal.NOT_A_LEASE})


class LeaseBook(Protocol):
    """What applying a document reads of the licence component (agent/licence/component.py)."""

    leases: dict[str, HeldLease]
    releaser: Releaser | None
    outbox: Outbox
    wall: Callable[[], float]
    mono: Callable[[], float]

    def trusted_keys(self) -> dict[str, Any]: ...

    def accept(
        self, token: str, highest_epochs: Mapping[str, int], now_wall: float, trusted: dict[str, Any] | None = None
    ) -> kc.LeaseClaims: ...

    def lease_report(self, conn: Any, leases: Mapping[str, HeldLease] | None = None) -> kc.LeaseReport: ...


@dataclass(frozen=True, slots=True)
class DocUpdate:
    leases: dict[str, HeldLease]
    refusal: Verdict | None  # the last token refused, shown when no lease is usable
    refused: int
    released: int


def apply_doc(licence: LeaseBook, conn: sqlite3.Connection, doc: dict[str, Any]) -> DocUpdate:
    """Validate and apply a document; ValueError (before any write) refuses it whole."""
    parsed = kc.LicenceDoc.model_validate(doc)
    assert licence.releaser is not None
    now_wall, now_mono = licence.wall(), licence.mono()
    trusted = licence.trusted_keys()
    epochs = db.highest_epochs(conn)
    accepted: dict[str, tuple[kc.LeaseClaims, str]] = {}
    refusal: Verdict | None = None
    refused = 0
    unreadable = False
    named: dict[str, Refusal] = {}  # licence id -> a genuine token naming it, refused for our clock
    for token in parsed.leases:
        try:
            claims = licence.accept(token, epochs, now_wall, trusted)
            if db.tombstone(conn, claims.licence_id, claims.epoch) is not None:
                raise LeaseRefused(
                    Refusal.RELEASED,
                    f"licence {claims.licence_id} epoch {claims.epoch} was released here",
                    licence_id=claims.licence_id,
                )
        except LeaseRefused as exc:
            refused += 1
            unreadable |= exc.code in UNREADABLE
            refusal = Verdict.refused(exc.code)
            log.error("licence lease refused", extra={"code": exc.code.value, "reason": str(exc)})
            # Only a clock problem is a reason to keep the lease held: a renewal the cloud signed
            # with its own time, more than 5 min ahead of ours. A wrong device or an old epoch is
            # the cloud's mistake or a move: like an omission, it takes the licence away.
            if exc.code is Refusal.ISSUED_IN_FUTURE and exc.licence_id is not None:
                named.setdefault(exc.licence_id, exc.code)
            continue
        best = accepted.get(claims.licence_id)
        if best is None or (claims.epoch, claims.expires_at) > (best[0].epoch, best[0].expires_at):
            accepted[claims.licence_id] = (claims, token)

    leases: dict[str, HeldLease] = {}
    for licence_id, (claims, token) in accepted.items():
        held = licence.leases.get(licence_id)
        if held is not None and held.token == token and not held.released:
            leases[licence_id] = held  # the same lease again: its monotonic start stays
            continue
        db.put_lease(conn, licence_id, claims.epoch, token, now_wall)
        db.raise_epoch(conn, licence_id, claims.epoch)
        leases[licence_id] = HeldLease(claims, token, now_mono, False)
        if held is None or held.released:
            db.grant_pending_bind_requests(conn, licence_id, now_wall)
            log.info(
                "licence granted",
                extra={"licence_id": licence_id, "epoch": claims.epoch, "expires_at": claims.expires_at},
            )

    released = 0
    for licence_id, held in licence.leases.items():
        if licence_id in leases:
            continue
        if not held.released and unreadable:
            log.warning(
                "licence document had unreadable leases; keeping the held one until a readable document",
                extra={"licence_id": licence_id},
            )
        elif not held.released and licence_id in named:
            # Still listed, in a lease this terminal refused (its clock may be behind the cloud's):
            # the cloud did not take it away, so keep the one held until it runs out.
            log.warning(
                "the cloud's newer lease for a held licence was refused; keeping the held one",
                extra={"licence_id": licence_id, "code": named[licence_id].value},
            )
        elif not held.released:
            epoch = held.claims.epoch
            receipt = licence.releaser.sign(licence_id, epoch, now_wall)
            db.mark_released(conn, licence_id, epoch)
            db.add_tombstone(conn, licence_id, epoch, receipt, now_wall, "taken_away")
            held = replace(held, released=True)
            released += 1
            log.warning(
                "licence taken away by the cloud; sales on it stop", extra={"licence_id": licence_id, "epoch": epoch}
            )
        leases[licence_id] = held

    listed = {(claims.licence_id, claims.epoch) for claims, _ in accepted.values()}
    db.confirm_tombstones(conn, listed, older_than=now_wall, now=now_wall)
    # The report doubles as the ack of a grant; it commits with the document's version.
    licence.outbox.enqueue(conn, licence.lease_report(conn, leases))
    return DocUpdate(leases, refusal, refused, released)
