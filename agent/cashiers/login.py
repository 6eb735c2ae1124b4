"""Cashier login, offline: the PIN is checked against the cached roster's hash.

``verify_pin`` is scrypt (~130 ms, 32 MiB): it runs in a worker thread, at most
``VERIFY_SLOTS`` at a time, and one at a time per cashier so parallel guesses cannot
overshoot the lockout. Order of checks: roster present, code known, cashier enabled,
PIN set, not locked (no hash is computed for a locked cashier), PIN, point of sale
(the cashier's points of sale are listed only after a correct PIN).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from agent.cashiers import audit, lockout, sessions
from agent.cashiers.permissions import actions_of
from agent.cashiers.roster import Roster
from agent.cashiers.sessions import CashierSession
from agent.config import AgentConfig
from agent.refusal import Refused
from agent.store import Store
from broker.contract.roster import CashierDetails, PinHashError, RosterCashier, verify_pin


class LoginDesk(Protocol):
    """What a login uses of the cashiers component (agent/cashiers/component.py)."""

    config: AgentConfig
    store: Store
    audit: audit.Audit
    clock: Callable[[], float]
    verify_slots: asyncio.Semaphore
    failed_logins: int

    @property
    def roster(self) -> Roster: ...

    def refuse(self, cashier_id: str | None, code: str, message: str, **data: Any) -> LoginRefused: ...

    def lock_for(self, cashier_id: str) -> asyncio.Lock: ...


log = logging.getLogger(__name__)

VERIFY_SLOTS = 2  # concurrent scrypt runs: 2 x 32 MiB on a small terminal


class LoginRefused(Refused):
    """A refused login: stable ``code``, a message for the cashier, and details (attempts left, ...)."""

    def __init__(self, code: str, message: str, **data: Any) -> None:
        super().__init__(code, message, **{k: v for k, v in data.items() if v is not None})

    @property
    def data(self) -> dict[str, Any]:
        return self.details

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.details}


@dataclass(frozen=True)
class LoginResult:
    token: str
    session: CashierSession
    cashier: RosterCashier

    def as_dict(self, timeout_s: float) -> dict[str, Any]:
        return {"token": self.token, **describe(self.session, self.cashier, timeout_s)}


def describe(session: CashierSession, cashier: RosterCashier, timeout_s: float) -> dict[str, Any]:
    """A session for the POS and kassactl: who, roles, the details sales carry, expiry (no token).

    `session_label` (the airline session or counter the details set is for) is display
    only: it comes from the current roster, sales never carry it."""
    return {
        "cashier_id": cashier.cashier_id,
        "name": cashier.name,
        "roles": [r.value for r in cashier.roles],
        "actions": sorted(a.value for a in actions_of(list(cashier.roles))),
        "till_session_id": session.till_session_id,
        "point_of_sale": session.point_of_sale,
        "terminal_id": session.terminal_id,
        "operator_code": session.operator_code,
        "session_label": session_label(cashier, session.point_of_sale),
        "started_at": iso(session.started_at),
        "expires_at": iso(session.expires_at(timeout_s)),
    }


def session_label(cashier: RosterCashier, point_of_sale: str | None) -> str | None:
    """The label of the cashier's details set for `point_of_sale`, if it has one."""
    return next((d.session_label for d in cashier.details if d.point_of_sale == point_of_sale), None)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def choose_details(
    cashier: RosterCashier, wanted: str | None, default: str | None
) -> tuple[str | None, CashierDetails | None]:
    """The point of sale and its details set for this login, or LoginRefused(cashier.point_of_sale).

    An explicit choice must be one of the cashier's points of sale. Without one, the
    terminal's `[site] point_of_sale` is used if the cashier has details there, else the
    cashier's only set; several sets and no way to tell is refused with the list.
    """
    by_pos = {d.point_of_sale: d for d in cashier.details}
    listed = ", ".join(sorted(by_pos))
    if wanted is not None:
        if wanted in by_pos:
            return wanted, by_pos[wanted]
        if not by_pos and wanted == default:
            return wanted, None  # a cashier without details works at the terminal's own point of sale
        raise LoginRefused(
            "cashier.point_of_sale",
            f"cashier {cashier.cashier_id} has no details for point of sale {wanted}"
            + (f"; choose one of: {listed}" if listed else "; ask an admin to add details in the cloud"),
            points_of_sale=sorted(by_pos),
        )
    if not by_pos:
        return default, None
    if default in by_pos:
        return default, by_pos[default]
    if len(by_pos) == 1:
        only = next(iter(by_pos.values()))
        return only.point_of_sale, only
    raise LoginRefused(
        "cashier.point_of_sale",
        f"cashier {cashier.cashier_id} works at several points of sale; choose one of: {listed}",
        points_of_sale=sorted(by_pos),
    )


async def login(cashiers: LoginDesk, code: str, pin: str, point_of_sale: str | None = None) -> LoginResult:
    config = cashiers.config
    roster = cashiers.roster
    if not roster.loaded:
        raise cashiers.refuse(
            None,
            "cashier.not_allowed",
            "no cashier roster on this terminal yet: connect it to the cloud, then press Load (kassactl cashiers load)",
        )
    cashier = roster.find(code.strip()) if isinstance(code, str) else None
    if cashier is None:
        raise cashiers.refuse(
            None, "cashier.unknown", "no cashier with this code is allowed on this terminal; check the code"
        )
    if not cashier.enabled:
        raise cashiers.refuse(
            cashier.cashier_id, "cashier.disabled", f"cashier {cashier.cashier_id} is disabled; ask an admin"
        )
    if cashier.pin_hash is None:
        raise cashiers.refuse(
            cashier.cashier_id,
            "cashier.no_pin",
            f"cashier {cashier.cashier_id} has no PIN yet; set one in the cloud, then press Load",
        )
    async with cashiers.lock_for(cashier.cashier_id):
        await _check_not_locked(cashiers, cashier.cashier_id)
        async with cashiers.verify_slots:
            try:
                correct = await asyncio.to_thread(verify_pin, pin if isinstance(pin, str) else "", cashier.pin_hash)
            except PinHashError:
                raise cashiers.refuse(
                    cashier.cashier_id,
                    "cashier.no_pin",
                    (
                        f"the PIN of cashier {cashier.cashier_id} cannot be checked on this agent; set it again in the "
                        f"cloud"
                    ),
                ) from None
        if not correct:
            raise _wrong_pin(cashiers, cashier.cashier_id)
        current = cashiers.roster  # the roster may have changed while the hash was computed
        why_not = current.allows(cashier.cashier_id)
        if why_not is not None:
            raise cashiers.refuse(
                cashier.cashier_id,
                why_not.replace("removed", "not_allowed"),
                f"cashier {cashier.cashier_id} was just {why_not.split('.')[1]} on this terminal",
            )
        cashier = current.by_id[cashier.cashier_id]
        try:
            chosen, details = choose_details(cashier, point_of_sale, config.site.point_of_sale)
        except LoginRefused as refused:
            with cashiers.store.transaction() as conn:
                lockout.reset(conn, cashier.cashier_id)  # the PIN was right
                cashiers.audit.record(
                    conn, audit.LOGIN_FAILED, cashier.cashier_id, reason=refused.code, point_of_sale=point_of_sale
                )
            raise
        with cashiers.store.transaction() as conn:
            lockout.reset(conn, cashier.cashier_id)
            token, session = sessions.open_session(
                conn,
                cashier_id=cashier.cashier_id,
                point_of_sale=chosen,
                terminal_id=details.terminal_id if details else None,
                operator_code=details.operator_code if details else cashier.operator_code,
                now=cashiers.clock(),
            )
            cashiers.audit.record(
                conn,
                audit.LOGIN,
                cashier.cashier_id,
                till_session_id=session.till_session_id,
                point_of_sale=chosen,
                terminal_id=session.terminal_id,
                operator_code=session.operator_code,
            )
    log.info(
        "cashier logged in",
        extra={
            "cashier_id": cashier.cashier_id,
            "point_of_sale": chosen or "-",
            "till_session": session.till_session_id,
        },
    )
    cashiers.audit.publish(
        "cashier.login", cashier_id=cashier.cashier_id, point_of_sale=chosen, till_session_id=session.till_session_id
    )
    return LoginResult(token, session, cashier)


async def _check_not_locked(cashiers: LoginDesk, cashier_id: str) -> None:
    config = cashiers.config.cashiers
    until = lockout.locked_until(cashiers.store.read(), cashier_id, cashiers.clock(), config.lockout_s)
    if until is not None:
        raise cashiers.refuse(
            cashier_id,
            "cashier.locked",
            f"cashier {cashier_id} is locked after too many wrong PINs until {iso(until)}; try again then",
            locked_until=iso(until),
        )


def _wrong_pin(cashiers: LoginDesk, cashier_id: str) -> LoginRefused:
    config = cashiers.config.cashiers
    with cashiers.store.transaction() as conn:
        failure = lockout.record_failure(conn, cashier_id, cashiers.clock(), config.lockout_attempts, config.lockout_s)
        cashiers.audit.record(
            conn, audit.LOGIN_FAILED, cashier_id, reason="cashier.wrong_pin", attempts_left=failure.attempts_left
        )
        if failure.locked_until is not None:
            cashiers.audit.record(
                conn, audit.LOCKED, cashier_id, locked_until=iso(failure.locked_until), lockout_s=config.lockout_s
            )
    cashiers.failed_logins += 1
    if failure.locked_until is not None:
        log.warning(
            "cashier locked after too many wrong PINs",
            extra={"cashier_id": cashier_id, "locked_until": iso(failure.locked_until)},
        )
        cashiers.audit.publish("cashier.locked", cashier_id=cashier_id, locked_until=iso(failure.locked_until))
        return LoginRefused(
            "cashier.locked",
            f"wrong PIN; cashier {cashier_id} is now locked until {iso(failure.locked_until)}",
            locked_until=iso(failure.locked_until),
            attempts_left=0,
        )
    log.info(
        "cashier login failed: wrong PIN", extra={"cashier_id": cashier_id, "attempts_left": failure.attempts_left}
    )
    return LoginRefused(
        "cashier.wrong_pin",
        f"wrong PIN; {failure.attempts_left} attempt(s) left before cashier {cashier_id} is locked",
        attempts_left=failure.attempts_left,
    )
