"""Giving a licence up: the ``licence.release`` command and the offline release file.

A release stops sales on the lease at once (memory first), then writes in ONE transaction:
the lease marked released, a tombstone with a receipt signed by the device key, and the
up/licence ``ReleaseReceipt``. Releasing again answers with the same receipt.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.cloud.inbound import CommandError
from agent.cloud.outbox import Outbox
from agent.config import AgentConfig
from agent.licence import store as db
from agent.licence.lease import HeldLease
from agent.pairing.keys import write_public_file
from agent.refusal import Refused
from agent.store import Store
from broker import contract as kc
from broker.contract import licence as kl
from broker.contract.fields import MAX_STORED_INT


class LeaseHolder(Protocol):
    """What the releaser reads and changes of the licence component (agent/licence/component.py)."""

    device_id: str
    device_key_fingerprint: str
    leases: dict[str, HeldLease]
    store: Store
    outbox: Outbox
    config: AgentConfig
    wall: Callable[[], float]


log = logging.getLogger(__name__)

NOT_HELD = "licence.not_held"
MAX_EPOCH = MAX_STORED_INT  # the store's INTEGER; a larger epoch was never held here


class LicenceNotHeld(Refused):
    """This terminal never held the licence: there is nothing to release or sign."""

    def __init__(self, message: str) -> None:
        super().__init__(NOT_HELD, message)


class Releaser:
    def __init__(self, licence: LeaseHolder, device_key: Ed25519PrivateKey) -> None:
        self.licence = licence
        self._device_key = device_key

    def sign(self, licence_id: str, epoch: int, released_at: float) -> str:
        claims = kl.ReleaseClaims(
            licence_id=licence_id,
            device_id=self.licence.device_id,
            device_key=self.licence.device_key_fingerprint,
            epoch=epoch,
            released_at=int(released_at),
        )
        return kl.sign_release(claims, self._device_key)

    def release(self, licence_id: str, epoch: int, cause: str) -> str:
        """Stop using ``licence_id`` up to ``epoch``; returns the receipt (the stored one if released before)."""
        licence = self.licence
        held = licence.leases.get(licence_id)
        if held is not None and not held.released and held.claims.epoch <= epoch:
            licence.leases[licence_id] = replace(held, released=True)  # no sale from this moment on
        now = licence.wall()
        with licence.store.transaction() as conn:
            stone = db.tombstone(conn, licence_id, epoch)
            if stone is not None:
                return stone.receipt
            if licence_id not in db.highest_epochs(conn):
                raise LicenceNotHeld(f"this terminal never held licence {licence_id}")
            receipt = self.sign(licence_id, epoch, now)
            db.mark_released(conn, licence_id, epoch)
            db.add_tombstone(conn, licence_id, epoch, receipt, now, cause)
            db.raise_epoch(conn, licence_id, epoch)  # a lease of this epoch or older never comes back
            licence.outbox.enqueue(
                conn,
                kc.ReleaseReceipt(
                    kind=kc.LicenceKind.RELEASE_RECEIPT, licence_id=licence_id, epoch=epoch, receipt=receipt
                ),
            )
        log.warning(
            "licence released; sales on it stop", extra={"licence_id": licence_id, "epoch": epoch, "cause": cause}
        )
        return receipt

    def command(self, args: dict[str, Any]) -> dict[str, Any]:
        """The ``licence.release`` command: ``{"licence_id", "epoch"}`` -> ``{"receipt"}``."""
        licence_id, epoch = args.get("licence_id"), args.get("epoch")
        if not isinstance(licence_id, str) or not licence_id or type(epoch) is not int or not 1 <= epoch <= MAX_EPOCH:
            raise CommandError(
                "bad_args", f"licence.release needs licence_id (text) and epoch (an integer from 1 to {MAX_EPOCH})"
            )
        try:
            return {"receipt": self.release(licence_id, epoch, "command")}
        except LicenceNotHeld as exc:
            raise CommandError(NOT_HELD, str(exc)) from None

    # ---------------------------------------------------------------- offline
    def release_file(self, licence_id: str | None = None) -> dict[str, Any]:
        """Release locally and write the receipt as a release file (0600) in the state dir."""
        licence_id, epoch = self._which(licence_id)
        receipt = self.release(licence_id, epoch, "release_file")
        text = kl.release_file_text(self.licence.device_id, licence_id, epoch, receipt)
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", licence_id)
        path = self.licence.config.paths.state_dir / f"licence-release-{safe}-e{epoch}.json"
        write_public_file(path, (text + "\n").encode(), mode=0o600)
        log.info("licence release file written", extra={"licence_id": licence_id, "epoch": epoch, "path": str(path)})
        return {"licence_id": licence_id, "epoch": epoch, "path": str(path), "text": text, "qr": qr_text(text)}

    def _which(self, licence_id: str | None) -> tuple[str, int]:
        leases = self.licence.leases
        if licence_id is not None:
            held = leases.get(licence_id)
            if held is not None:
                return licence_id, held.claims.epoch
            stones = [t for t in db.tombstones(self.licence.store.read()) if t.licence_id == licence_id]
            if stones:
                return licence_id, max(t.epoch for t in stones)
            raise LicenceNotHeld(
                f"this terminal never held licence {licence_id}; `kassactl licence` shows the one it has"
            )
        holding = [h for h in leases.values() if not h.released]
        if len(holding) > 1:
            raise LicenceNotHeld(f"this terminal holds {len(holding)} licences; say which one (licence_id)")
        if holding:
            return holding[0].claims.licence_id, holding[0].claims.epoch
        stones = db.tombstones(self.licence.store.read())
        if stones:  # released before: the same receipt again
            return stones[-1].licence_id, stones[-1].epoch
        raise LicenceNotHeld("this terminal holds no licence: there is nothing to release")


def qr_text(data: str) -> str:
    """The QR code as text for a terminal: two modules per character cell, dark on light."""
    import qrcode

    code = qrcode.QRCode(border=2, error_correction=qrcode.constants.ERROR_CORRECT_L)
    code.add_data(data)
    code.make(fit=True)
    matrix = code.get_matrix()
    if len(matrix) % 2:
        matrix.append([False] * len(matrix[0]))
    # Light modules are drawn (terminals are mostly dark), so scanners see dark modules as dark.
    cells = {(False, False): "\u2588", (False, True): "\u2580", (True, False): "\u2584", (True, True): " "}
    return "\n".join(
        "".join(cells[(top, bottom)] for top, bottom in zip(matrix[row], matrix[row + 1], strict=True))
        for row in range(0, len(matrix), 2)
    )
