"""The cashiers component: roster cache, offline login, sessions and the permission gate.

Public Python API (the control socket today, the POS API later, call these):
``await login(code, pin, point_of_sale=None) -> LoginResult``, ``logout(token)``,
``session(token)``, ``authorize(token, action, *, sale_till_session=None) -> Grant``,
``await load(timeout_s=5.0)`` and ``receipt_printed()``.

The roster arrives as the `cashiers` state document. The component works with or
without a cloud link: its handlers are on the cloud port's ``Inbound`` from construction
(agent/cloud/port.py), so a document that arrives once pairing started the link is taken at
once; at start it catches up on any newer document inbound already holds in ``applied_state``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from agent.cashiers import audit, lockout, sessions
from agent.cashiers.audit import Audit
from agent.cashiers.login import VERIFY_SLOTS, LoginRefused, LoginResult, describe, iso
from agent.cashiers.login import login as _login
from agent.cashiers.permissions import Action, Gate, Grant
from agent.cashiers.roster import Roster, applied_roster_doc, load_accepted, parse_roster, save_accepted
from agent.cashiers.sessions import CashierSession
from agent.cloud.port import CloudPort
from agent.licence.lease import Verdict
from agent.refusal import Refused
from agent.runtime import Runtime
from broker import contract as kc

log = logging.getLogger(__name__)

# Print job kinds that are receipts: each may trigger a roster version check.
RECEIPT_JOB_KINDS = frozenset({"receipt", "sale", "refund"})
SWEEP_EVERY_S = 60.0


class LoadError(Refused):
    """The roster could not be asked for (no cloud link, not connected); says what to do."""

    def __init__(self, message: str) -> None:
        super().__init__("cashiers.load_unavailable", message)


class Cashiers:
    name = "cashiers"

    def __init__(
        self,
        runtime: Runtime,
        cloud: CloudPort,
        sale_verdict: Callable[[], Verdict],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = runtime.config
        self.store = runtime.store
        self.scheduler = runtime.scheduler
        self.events = runtime.events
        self.device_id = runtime.device_id
        self.clock = clock  # wall clock; tests replace it to expire lockouts and sessions
        self.audit = Audit(runtime.outbox, runtime.events)
        self.roster: Roster = load_accepted(self.store.read())
        self.refused: dict[str, Any] | None = None  # the newest pushed version we refused, and why
        self.gate = Gate(
            self.store, self.config, lambda: self.roster, lambda: self.clock(), self.end_session, sale_verdict
        )
        self.cloud = cloud
        cloud.inbound.on_state(kc.StateDomain.CASHIERS, self._validate_pushed)
        cloud.inbound.state_listeners.append(self._on_state_applied)
        cloud.inbound.on_command(kc.CommandName.CASHIERS_LOAD.value, self._cmd_load)
        self.failed_logins = 0
        self.version_checks = 0
        self._last_check: float | None = None
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.verify_slots = asyncio.Semaphore(VERIFY_SLOTS)  # bound to the loop at first use

    # ---------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        self.catch_up()  # a document applied while this component was not running
        self._tasks.append(asyncio.create_task(self._watch_receipts(), name="cashiers-receipts"))
        self.sweep_idle()
        self.scheduler.every("cashier-sessions", SWEEP_EVERY_S, self.sweep_idle)
        log.info("cashier roster loaded", extra={"version": self.roster.version, "cashiers": len(self.roster.by_id)})

    async def stop(self) -> None:
        self.scheduler.cancel("cashier-sessions")
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def status(self) -> dict[str, Any]:
        conn = self.store.read()
        open_sessions = sessions.count(conn)
        locked = lockout.locked_cashiers(conn, self.clock())
        summary = (
            f"roster v{self.roster.version}, {len(self.roster.by_id)} cashiers, {open_sessions} session(s) open"
            if self.roster.loaded
            else "no roster yet (connect to the cloud, then kassactl cashiers load)"
        )
        if locked:
            summary += f", {len(locked)} locked"
        if self.refused:
            summary += f"; refused v{self.refused['version']}: {self.refused['problem'][:120]}"
        return {
            "summary": summary,
            "roster_version": self.roster.version,
            "cashiers": len(self.roster.by_id),
            "open_sessions": open_sessions,
            "locked": sorted(locked),
            "refused": self.refused,
            "linked": self.cloud.attached,
            "failed_logins": self.failed_logins,
            "version_checks": self.version_checks,
        }

    # -------------------------------------------------------------- the roster
    @staticmethod
    def _validate_pushed(conn: Any, doc: dict[str, Any]) -> None:
        """Inbound's handler: refuse a malformed roster (ValueError, logged by inbound)."""
        parse_roster(doc)

    def _on_state_applied(self, domain: str, version: int) -> None:
        if domain == kc.StateDomain.CASHIERS.value:
            self.catch_up()

    def catch_up(self) -> None:
        """Adopt the newest pushed roster if it is newer than the accepted one and valid."""
        stored = applied_roster_doc(self.store.read())
        if stored is None or stored[0] <= self.roster.version:
            return
        version, raw = stored
        if self.refused and self.refused["version"] == version:
            return
        try:
            doc = parse_roster(raw)
        except ValueError as exc:
            self.refused = {"version": version, "problem": str(exc)}
            log.error(
                "pushed cashier roster refused; the previous one stays in use",
                extra={"version": version, "kept": self.roster.version, "problem": str(exc)},
            )
            return
        new = Roster.build(version, doc)
        with self.store.transaction() as conn:
            save_accepted(conn, version, doc)
            ended = self._end_not_allowed(conn, new)
        self.roster, self.refused = new, None
        log.info(
            "cashier roster applied",
            extra={"version": version, "cashiers": len(new.by_id), "sessions_ended": len(ended)},
        )
        for session, reason in ended:
            self.audit.publish(
                "cashier.logout", cashier_id=session.cashier_id, reason=reason, till_session_id=session.till_session_id
            )
        self.audit.publish("cashiers.roster", version=version, cashiers=len(new.by_id))

    def _end_not_allowed(self, conn: Any, roster: Roster) -> list[tuple[CashierSession, str]]:
        """End, in the roster's transaction, every session its cashier may no longer hold."""
        ended = []
        for session in sessions.all_sessions(conn):
            reason = roster.allows(session.cashier_id)
            if reason is None and session.terminal_id is not None:
                held = {d.point_of_sale for d in roster.by_id[session.cashier_id].details}
                reason = None if session.point_of_sale in held else "cashier.point_of_sale"
            if reason is not None:
                sessions.end(conn, session)
                self.audit.record(
                    conn, audit.LOGOUT, session.cashier_id, reason=reason, till_session_id=session.till_session_id
                )
                ended.append((session, reason))
                log.info(
                    "cashier session ended by a roster change",
                    extra={"cashier_id": session.cashier_id, "reason": reason},
                )
        return ended

    async def load(self, timeout_s: float = 5.0) -> dict[str, Any]:
        """Ask the cloud for the current roster now ("Load"): the broker sends the retained
        document again; an unchanged one is a no-op. Reports the version before and after."""
        before = self.roster.version
        if not self.cloud.attached:
            raise LoadError(
                f"this terminal has no cloud link yet (pairing not finished); roster v{before} stays in use"
            )
        if not self.cloud.connected:
            raise LoadError(
                f"not connected to the cloud ({self.cloud.last_error or 'connecting'}); roster v{before} stays in "
                f"use, try Load again later"
            )
        received = await self.cloud.refresh_state(kc.StateDomain.CASHIERS, timeout_s)
        self.catch_up()
        after = self.roster.version
        log.info("cashier roster load asked", extra={"before": before, "after": after, "received": received})
        return {
            "before": before,
            "after": after,
            "changed": after != before,
            "received": received,
            "refused": self.refused,
            "cashiers": len(self.roster.by_id),
        }

    def _cmd_load(self, args: dict[str, Any]) -> dict[str, Any]:
        """The cloud's `cashiers.load` command: fetch the retained roster again (answered at once;
        the document follows through the usual version check)."""
        asked = self.cloud.refresh_retained(kc.StateDomain.CASHIERS)
        return {"roster_version": self.roster.version, "refreshing": asked}

    def receipt_printed(self) -> bool:
        """A receipt came out: tell the cloud which roster we hold, at most every
        `cashiers.check_interval_s`; the cloud pushes a newer one if there is. True if sent."""
        interval = self.config.cashiers.check_interval_s
        now = time.monotonic()
        if not self.cloud.attached or (self._last_check is not None and now - self._last_check < interval):
            return False
        self._last_check = now
        self.cloud.report_state()  # one small up/state message, never a download
        self.version_checks += 1
        return True

    async def _watch_receipts(self) -> None:
        subscription = self.events.subscribe({"print.done"})
        try:
            while True:
                event = await subscription.next()
                if event.data.get("job_kind") in RECEIPT_JOB_KINDS:
                    self.receipt_printed()
        finally:
            subscription.close()

    # ---------------------------------------------------------------- sessions
    async def login(self, code: str, pin: str, point_of_sale: str | None = None) -> LoginResult:
        """Log a cashier in offline; LoginRefused with a stable code otherwise."""
        return await _login(self, code, pin, point_of_sale)

    def refuse(self, cashier_id: str | None, code: str, message: str, **data: Any) -> LoginRefused:
        """Record a refused login (audit event, counter) and return the exception to raise."""
        with self.store.transaction() as conn:
            self.audit.record(
                conn,
                audit.LOGIN_FAILED,
                cashier_id,
                reason=code,
                **{k: v for k, v in data.items() if k != "points_of_sale"},
            )
        self.failed_logins += 1
        log.info("cashier login refused", extra={"cashier_id": cashier_id or "-", "reason": code})
        return LoginRefused(code, message, **data)

    def lock_for(self, cashier_id: str) -> asyncio.Lock:
        return self._locks.setdefault(cashier_id, asyncio.Lock())

    def logout(self, token: str) -> dict[str, Any]:
        session = self.gate.session_of(token)
        self.end_session(session, "logout")
        return {"ended": True, "cashier_id": session.cashier_id, "till_session_id": session.till_session_id}

    def session(self, token: str) -> dict[str, Any]:
        """Who is logged in with ``token``: roles, details, expiry (PermissionRefused if none)."""
        session, cashier = self.gate.current_cashier(token)
        return describe(session, cashier, self.config.cashiers.session_timeout_s)

    def authorize(self, token: str, action: Action | str, *, sale_till_session: str | None = None) -> Grant:
        """The permission gate (``agent.cashiers.permissions.Gate.authorize``)."""
        return self.gate.authorize(token, action, sale_till_session=sale_till_session)

    def end_session(self, session: CashierSession, reason: str) -> None:
        with self.store.transaction() as conn:
            if not sessions.end(conn, session):
                return  # ended meanwhile
            self.audit.record(
                conn, audit.LOGOUT, session.cashier_id, reason=reason, till_session_id=session.till_session_id
            )
        log.info("cashier session ended", extra={"cashier_id": session.cashier_id, "reason": reason})
        self.audit.publish(
            "cashier.logout", cashier_id=session.cashier_id, reason=reason, till_session_id=session.till_session_id
        )

    def sweep_idle(self) -> int:
        """End sessions idle longer than `cashiers.session_timeout_s` (also checked at each use)."""
        cutoff = self.clock() - self.config.cashiers.session_timeout_s
        idle = sessions.idle_since(self.store.read(), cutoff)
        for session in idle:
            self.end_session(session, "session.expired")
        return len(idle)

    def listing(self) -> dict[str, Any]:
        locked = lockout.locked_cashiers(self.store.read(), self.clock())
        cashiers = self.roster.public()
        for entry in cashiers:
            until = locked.get(entry["cashier_id"])
            entry["locked_until"] = iso(until) if until else None
        return {"version": self.roster.version, "refused": self.refused, "cashiers": cashiers}
