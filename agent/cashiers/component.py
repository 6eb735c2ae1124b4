"""The cashiers component: roster cache, offline login, sessions and the permission gate.

Public Python API (the control socket today, the POS API later, call these):
``await login(code, pin, point_of_sale=None) -> LoginResult``, ``logout(token)``,
``session(token)``, ``authorize(token, action, *, sale_till_session=None) -> Grant``,
``await load(timeout_s=5.0)`` and ``receipt_printed()``.

The roster arrives as the `cashiers` state document. The component works with or
without a cloud link: pairing may start the link later; the link calls ``attach_cloud``
on every component when it starts, before its first message, and the component then
catches up on any newer document inbound already holds in ``applied_state``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agent.cashiers import audit, lockout, sessions  # control: registers the control methods
from agent.cashiers.audit import Audit
from agent.cashiers.login import VERIFY_SLOTS, LoginRefused, LoginResult, describe, iso
from agent.cashiers.login import login as _login
from agent.cashiers.permissions import Action, Gate, Grant, PermissionRefused
from agent.cashiers.roster import Roster, applied_roster_doc, load_accepted, parse_roster, save_accepted
from agent.cashiers.sessions import CashierSession
from broker import contract as kc

if TYPE_CHECKING:
    from agent.daemon import Agent

log = logging.getLogger(__name__)

# Print job kinds that are receipts: each may trigger a roster version check.
RECEIPT_JOB_KINDS = frozenset({"receipt", "sale", "refund"})
SWEEP_EVERY_S = 60.0


class LoadError(Exception):
    """The roster could not be asked for (no cloud link, not connected); says what to do."""


class Cashiers:
    name = "cashiers"

    def __init__(self, agent: Agent, *, clock: Callable[[], float] = time.time) -> None:
        assert agent.store is not None
        self.agent = agent
        self.clock = clock  # wall clock; tests replace it to expire lockouts and sessions
        self.audit = Audit(agent)
        self.roster: Roster = load_accepted(agent.store.read())  # before the link can attach
        self.refused: dict[str, Any] | None = None  # the newest pushed version we refused, and why
        self.gate = Gate(agent, lambda: self.roster, lambda: self.clock(), self.end_session)
        self.link: Any = None
        self.failed_logins = 0
        self.version_checks = 0
        self._last_check: float | None = None
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.verify_slots: asyncio.Semaphore | None = None

    # ---------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        self.verify_slots = asyncio.Semaphore(VERIFY_SLOTS)
        if self.link is None:  # a link that started before this component was added
            try:
                self.attach_cloud(self.agent.component("cloud"))
            except LookupError:
                pass  # no link yet: pairing starts it later, and it attaches us then
        self._tasks.append(asyncio.create_task(self._watch_receipts(), name="cashiers-receipts"))
        self.sweep_idle()
        self.agent.scheduler.every("cashier-sessions", SWEEP_EVERY_S, self.sweep_idle)
        log.info("cashier roster loaded", extra={"version": self.roster.version, "cashiers": len(self.roster.by_id)})

    async def stop(self) -> None:
        self.agent.scheduler.cancel("cashier-sessions")
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def status(self) -> dict[str, Any]:
        conn = self.agent.store.read()
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
            "linked": self.link is not None,
            "failed_logins": self.failed_logins,
            "version_checks": self.version_checks,
        }

    # -------------------------------------------------------------- the roster
    def attach_cloud(self, link: Any) -> None:
        """Called by the cloud link as it starts: take the `cashiers` documents from now on."""
        if self.link is link:
            return
        link.inbound.on_state(kc.StateDomain.CASHIERS, self._validate_pushed)
        link.inbound.state_listeners.append(self._on_state_applied)
        if kc.CommandName.CASHIERS_LOAD.value not in link.inbound.command_handlers:
            link.inbound.on_command(kc.CommandName.CASHIERS_LOAD.value, self._cmd_load)
        self.link = link
        self.catch_up()  # a doc applied before the handler existed (same loop turn: none is missed)

    @staticmethod
    def _validate_pushed(conn: Any, doc: dict[str, Any]) -> None:
        """Inbound's handler: refuse a malformed roster (ValueError, logged by inbound)."""
        parse_roster(doc)

    def _on_state_applied(self, domain: str, version: int) -> None:
        if domain == kc.StateDomain.CASHIERS.value:
            self.catch_up()

    def catch_up(self) -> None:
        """Adopt the newest pushed roster if it is newer than the accepted one and valid."""
        stored = applied_roster_doc(self.agent.store.read())
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
        with self.agent.store.transaction() as conn:
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
        if self.link is None:
            raise LoadError(
                f"this terminal has no cloud link yet (pairing not finished); roster v{before} stays in use"
            )
        if not self.link.mqtt.connected:
            raise LoadError(
                f"not connected to the cloud ({self.link.mqtt.last_error or 'connecting'}); roster v{before} stays in use, try Load again later"
            )
        received = await self.link.refresh_state(kc.StateDomain.CASHIERS, timeout_s)
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
        asked = self.link.mqtt.refresh_retained(kc.state_topic(self.agent.config.device_id, kc.StateDomain.CASHIERS))
        return {"roster_version": self.roster.version, "refreshing": asked}

    def receipt_printed(self) -> bool:
        """A receipt came out: tell the cloud which roster we hold, at most every
        `cashiers.check_interval_s`; the cloud pushes a newer one if there is. True if sent."""
        interval = self.agent.config.cashiers.check_interval_s
        now = time.monotonic()
        if self.link is None or (self._last_check is not None and now - self._last_check < interval):
            return False
        self._last_check = now
        self.link.report_state()  # one small up/state message, never a download
        self.version_checks += 1
        return True

    async def _watch_receipts(self) -> None:
        subscription = self.agent.events.subscribe({"print.done"})
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
        with self.agent.store.transaction() as conn:
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
        session = self.gate.session_of(token)
        cashier = self.roster.by_id.get(session.cashier_id)
        if cashier is None:
            self.end_session(session, "cashier.removed")
            raise PermissionRefused(
                "session.invalid",
                f"cashier {session.cashier_id} is no longer on this terminal's roster; the session ended",
            )
        return describe(session, cashier, self.agent.config.cashiers.session_timeout_s)

    def authorize(self, token: str, action: Action | str, *, sale_till_session: str | None = None) -> Grant:
        """The permission gate (``agent.cashiers.permissions.Gate.authorize``)."""
        return self.gate.authorize(token, action, sale_till_session=sale_till_session)

    def end_session(self, session: CashierSession, reason: str) -> None:
        with self.agent.store.transaction() as conn:
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
        cutoff = self.clock() - self.agent.config.cashiers.session_timeout_s
        idle = sessions.idle_since(self.agent.store.read(), cutoff)
        for session in idle:
            self.end_session(session, "session.expired")
        return len(idle)

    def listing(self) -> dict[str, Any]:
        locked = lockout.locked_cashiers(self.agent.store.read(), self.clock())
        cashiers = self.roster.public()
        for entry in cashiers:
            until = locked.get(entry["cashier_id"])
            entry["locked_until"] = iso(until) if until else None
        return {"version": self.roster.version, "refused": self.refused, "cashiers": cashiers}
