"""The licence component: which lease this terminal may sell on, kept current with the cloud.

- ``sale_verdict()`` is what the sale and refund paths call before every sale. It reads only
  memory: the tokens were verified once, when they arrived or at start.
- The cloud's ``licence`` state document (``Inbound.on_state``) says which leases the device
  may use; a held lease missing from a newer document is released (tombstone + receipt).
- The ``licence.release`` command stops a licence at once and answers with a receipt signed
  by the device key (agent/licence/release.py).
- A ``LeaseReport`` goes up after each document, on every (re)connect and every
  ``renew_after_s`` while connected; the cloud answers with renewed leases.

It works with or without the cloud link: its handlers are on the cloud port's ``Inbound``
from construction (agent/cloud/port.py), before the link, which pairing may start later,
can deliver a first message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from agent.cloud.port import CloudPort
from agent.licence import store as db
from agent.licence.bind_refusals import bind_refusal_advice
from agent.licence.docs import DocUpdate, apply_doc
from agent.licence.lease import HeldLease, LeaseRefused, Refusal, Verdict, accept_token, sale_verdict
from agent.licence.release import Releaser
from agent.pairing.keys import load_or_create_identity_key
from agent.runtime import Runtime
from broker import contract as kc
from broker.contract.signing import load_public_key, public_key_fingerprint, public_key_text

log = logging.getLogger(__name__)

DEFAULT_RENEW_AFTER_S = 3600
HIGH_WATER_PERSIST_S = 60.0  # the persisted wall-clock high-water trails memory by at most this
TOMBSTONE_REPORT_DAYS = 30
MAX_REPORTED = 100  # LeaseReport list limits


class Licence:
    name = "licence"

    def __init__(
        self,
        runtime: Runtime,
        cloud: CloudPort,
        *,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = runtime.config
        self.events = runtime.events
        self.store = runtime.store
        self.wall = wall
        self.mono = mono
        self.device_id = runtime.device_id
        self.outbox = runtime.outbox
        self.leases: dict[str, HeldLease] = {}  # licence id -> the lease held (or released) for it
        self.last_refusal: Verdict | None = None  # why the newest tokens were refused, if they were
        self.high_water = 0.0  # latest wall-clock time seen; memory leads, the store trails
        self._persisted_high_water = 0.0
        self._next_report_mono = 0.0
        self._staged: DocUpdate | None = None
        self.cloud = cloud
        cloud.inbound.on_state(kc.StateDomain.LICENCE, self._apply_doc)
        cloud.inbound.on_command(kc.CommandName.LICENCE_RELEASE.value, self._release_command)
        cloud.inbound.state_listeners.append(self._after_state)
        cloud.connect_listeners.append(self.report)
        self._task: asyncio.Task[None] | None = None
        self.releaser: Releaser | None = None
        self.device_key_fingerprint = ""
        self.device_public_key = ""

    # ---------------------------------------------------------------- lifecycle
    def load(self) -> None:
        """Keys, held leases (each token verified again), highest epochs and the high-water mark."""
        identity = load_or_create_identity_key(self.config.paths.state_dir)
        self.device_key_fingerprint = public_key_fingerprint(identity.public_key())
        self.device_public_key = public_key_text(identity.public_key())
        self.releaser = Releaser(self, identity)
        now = self.wall()
        with self.store.transaction() as conn:
            stored = db.leases(conn)
            epochs = db.highest_epochs(conn)
            self.high_water = max(db.wall_high_water(conn), now)
            db.put_wall_high_water(conn, self.high_water)
        self._persisted_high_water = self.high_water
        for row in stored:
            try:
                claims = self.accept(row.token, epochs, now)
            except LeaseRefused as refused:
                log.error(
                    "stored licence lease refused; not used",
                    extra={"licence_id": row.licence_id, "code": refused.code.value, "reason": str(refused)},
                )
                self.last_refusal = Verdict.refused(refused.code, row.licence_id)
                continue
            if claims.licence_id != row.licence_id or claims.epoch != row.epoch:
                log.error("stored licence lease does not match its row; not used", extra={"licence_id": row.licence_id})
                self.last_refusal = Verdict.refused(Refusal.TAMPERED, row.licence_id)
                continue
            # Received in an earlier boot: the monotonic clock restarted, the wall clock decides.
            self.leases[row.licence_id] = HeldLease(claims, row.token, None, row.released)
        log.info(
            "licence state loaded",
            extra={
                "held": sum(not h.released for h in self.leases.values()),
                "released": sum(h.released for h in self.leases.values()),
            },
        )

    async def start(self) -> None:
        await asyncio.to_thread(self.load)
        self._task = asyncio.create_task(self._tick(), name="licence")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.persist_high_water()

    # ----------------------------------------------------------------- hot path
    def sale_verdict(self) -> Verdict:
        """May a sale or refund run now? Memory only: no signature check, no store access."""
        now_wall = self.wall()
        now_mono = self.mono()
        if now_wall > self.high_water:
            self.high_water = now_wall
        best: Verdict | None = None
        refused: Verdict | None = None
        released: Verdict | None = None
        for lease in self.leases.values():  # a terminal normally holds one
            verdict = sale_verdict(lease, now_wall=now_wall, now_mono=now_mono, wall_high_water=self.high_water)
            if verdict.ok:
                if best is None or (verdict.expires_at or 0) > (best.expires_at or 0):
                    best = verdict
            elif lease.released:
                released = verdict
            else:
                refused = verdict
        return best or refused or self.last_refusal or released or Verdict.refused(Refusal.NO_LICENCE)

    # ---------------------------------------------------------------- accepting
    def trusted_keys(self) -> dict[str, Any]:
        return {key_id: load_public_key(text) for key_id, text in self.config.trust.cloud_keys.items()}

    def accept(
        self, token: str, highest_epochs: Mapping[str, int], now_wall: float, trusted: dict[str, Any] | None = None
    ) -> kc.LeaseClaims:
        """The claims of a lease this device may hold, or LeaseRefused saying why not."""
        claims = accept_token(
            token,
            device_id=self.device_id,
            device_key=self.device_key_fingerprint,
            trusted_keys=self.trusted_keys() if trusted is None else trusted,
            highest_epoch=0,
            now_wall=now_wall,
        )
        # The licence id is known only once the signature checked out: compare the epoch now.
        highest = highest_epochs.get(claims.licence_id, 0)
        if claims.epoch < highest:
            raise LeaseRefused(
                Refusal.OLD_EPOCH,
                f"lease epoch {claims.epoch} is below {highest}, already seen",
                licence_id=claims.licence_id,
            )
        return claims

    def _apply_doc(self, conn: Any, doc: dict[str, Any]) -> None:
        """State handler: runs inside the transaction that records the document's version."""
        self._staged = None  # a stage left by a transaction that failed must never apply later
        self._staged = apply_doc(self, conn, doc)

    def _after_state(self, domain: str, version: int) -> None:
        """After the document's transaction committed: the new leases take effect."""
        if domain != kc.StateDomain.LICENCE.value or self._staged is None:
            return
        update, self._staged = self._staged, None
        self.leases = update.leases
        self.last_refusal = update.refusal
        self._schedule_next_report()
        log.info(
            "licence document applied",
            extra={
                "version": version,
                "held": sum(not h.released for h in self.leases.values()),
                "refused": update.refused,
                "released": update.released,
            },
        )
        verdict = self.sale_verdict()  # the POS event stream shows the new verdict (agent/events.py)
        self.events.publish(
            "licence.changed", ok=verdict.ok, code=verdict.code, licence_id=verdict.licence_id, version=version
        )

    # ---------------------------------------------------------------- reporting
    def lease_report(self, conn: Any, leases: Mapping[str, HeldLease] | None = None) -> kc.LeaseReport:
        held = [
            kc.HeldLease(
                licence_id=h.claims.licence_id,
                epoch=h.claims.epoch,
                lease_expires_at=datetime.fromtimestamp(h.claims.expires_at, UTC),
            )
            for h in (self.leases if leases is None else leases).values()
            if not h.released
        ]
        since = self.wall() - TOMBSTONE_REPORT_DAYS * 86400
        stones = [
            kc.Tombstone(licence_id=t.licence_id, epoch=t.epoch, receipt=t.receipt)
            for t in db.tombstones(conn, unconfirmed_since=since)
        ]
        return kc.LeaseReport(
            kind=kc.LicenceKind.LEASE_REPORT, leases=held[:MAX_REPORTED], tombstones=stones[-MAX_REPORTED:]
        )

    def report(self) -> None:
        """Queue a LeaseReport: on every (re)connect and every renew_after_s while connected."""
        try:
            with self.store.transaction() as conn:
                self.outbox.enqueue(conn, self.lease_report(conn))
        except Exception:  # a report is resent next time; failing to queue one must not break the link
            log.exception("could not queue the licence lease report")
        self._schedule_next_report()

    def _schedule_next_report(self) -> None:
        renew = [h.claims.renew_after_s for h in self.leases.values() if not h.released]
        self._next_report_mono = self.mono() + min(renew, default=DEFAULT_RENEW_AFTER_S)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(HIGH_WATER_PERSIST_S)
            try:
                self.housekeeping()
            except Exception:
                log.exception("licence housekeeping failed; retrying in a minute")

    def housekeeping(self) -> None:
        """Once a minute: persist the high-water mark; report leases when renew_after_s is due."""
        self.sale_verdict()  # raises the high-water mark as time passes, sales or not
        self.persist_high_water()
        # Only while connected: an offline terminal would pile up reports; reconnecting sends one.
        if self.cloud.connected and self.mono() >= self._next_report_mono:
            self.report()

    def persist_high_water(self) -> None:
        if self.high_water > self._persisted_high_water:
            with self.store.transaction() as conn:
                db.put_wall_high_water(conn, self.high_water)
            self._persisted_high_water = self.high_water

    # --------------------------------------------------------------- technician
    def enter_key(self, typed_key: str) -> dict[str, Any]:
        """Queue a BindRequest for a typed licence key; LicenceKeyError says what is wrong with it."""
        key = kc.normalize_licence_key(typed_key)
        draft = self.outbox.draft(
            kc.BindRequest(kind=kc.LicenceKind.BIND_REQUEST, licence_key=key, device_public_key=self.device_public_key)
        )
        hint = key[-4:]
        now = self.wall()
        with self.store.transaction() as conn:
            self.outbox.enqueue(conn, draft)
            db.add_bind_request(conn, str(draft.message_id), hint, now)
        log.info(
            "licence key entered; bind request queued",
            extra={"key_hint": f"...{hint}", "message_id": str(draft.message_id)},
        )
        return {
            "message_id": str(draft.message_id),
            "key_hint": f"...{hint}",
            "requested_at": _iso(now),
            "cloud_connected": self.cloud.connected,
        }

    def _release_command(self, args: dict[str, Any]) -> dict[str, Any]:
        assert self.releaser is not None
        return self.releaser.command(args)

    def bind_request(self) -> dict[str, Any] | None:
        """The newest bind request and its outcome (refusals are read from the outbox_rejected table)."""
        request = db.latest_bind_request(self.store.read())
        if request is None:
            return None
        if request["outcome"] is None:
            reason = db.refusal_of(self.store.read(), request["message_id"])
            if reason is not None:
                with self.store.transaction() as conn:
                    db.decide_bind_request(conn, request["message_id"], "refused", reason, self.wall())
                request = db.latest_bind_request(self.store.read()) or request
        refused = request["outcome"] == "refused"
        return {
            "key_hint": f"...{request['key_hint']}",
            "requested_at": _iso(request["requested_at"]),
            "outcome": request["outcome"] or "pending",
            "detail": request["detail"],
            "message": bind_refusal_advice(request["detail"]) if refused else None,
            "decided_at": _iso(request["decided_at"]) if request["decided_at"] else None,
        }

    def status(self) -> dict[str, Any]:
        verdict = self.sale_verdict()
        lease = self.leases.get(verdict.licence_id) if verdict.licence_id else None
        bind = self.bind_request()
        if verdict.ok:
            summary = (
                f"licensed: {verdict.licence_id} epoch {lease.claims.epoch if lease else '?'} until "
                f"{_iso(verdict.expires_at or 0)}"
            )
        else:
            summary = f"no sales: {verdict.code} ({verdict.message})"
        if bind is not None and bind["outcome"] != "granted":
            summary += f"; key {bind['key_hint']} {bind['outcome']}" + (
                f": {bind['detail']} ({bind['message']})" if bind["outcome"] == "refused" else ""
            )
        return {
            "summary": summary,
            "ok": verdict.ok,
            "code": verdict.code,
            "message": verdict.message,
            "licence_id": verdict.licence_id,
            "epoch": lease.claims.epoch if lease else None,
            "expires_at": _iso(lease.claims.expires_at) if lease else None,
            "held": sorted(lid for lid, h in self.leases.items() if not h.released),
            "released": sorted(lid for lid, h in self.leases.items() if h.released),
            "bind_request": bind,
            "wall_high_water": _iso(self.high_water),
        }


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")
