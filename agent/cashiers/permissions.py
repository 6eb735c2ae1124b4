"""The permission gate: the ONE place that decides whether a cashier may do an action.

Every cashier action (sell, refund, open the drawer without a sale, void) goes through
``Gate.authorize(token, action)``, which returns a ``Grant`` or raises
``PermissionRefused``. Code that performs an action takes the ``Grant`` and is wrapped
in ``@requires(Action.X)``: a Grant can only be made by the gate, is for one action and
is short-lived, so an action cannot be reached without passing the gate.

Roles (``ROLE_ACTIONS``) come from the *current* roster, not from login time: a role the
cloud takes away stops working at the next action. ``admin`` does not imply ``sell``:
supervisors who also sell get both roles in the cloud (separation of duties stays
possible). ``technician`` (hardware and configuration) belongs to no cashier role:
technicians use the control socket, whose roles come from OS groups.
"""

from __future__ import annotations

import enum
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from agent.cashiers import sessions
from agent.cashiers.roster import Roster
from agent.cashiers.sessions import CashierSession
from agent.config import AgentConfig
from agent.licence.lease import Verdict
from agent.refusal import Refused
from agent.store import Store
from broker.contract.roster import CashierRole, RosterCashier


class Action(enum.StrEnum):
    SELL = "sell"
    REFUND_OWN = "refund_own"  # a sale of the cashier's own till session
    REFUND_ANY = "refund_any"  # any sale of any device
    NO_SALE = "no_sale"  # open the drawer without a sale
    VOID = "void"
    TECHNICIAN = "technician"  # hardware and configuration: no cashier role has it


ROLE_ACTIONS: dict[CashierRole, frozenset[Action]] = {
    CashierRole.CASHIER: frozenset({Action.SELL}),
    CashierRole.REFUND: frozenset({Action.REFUND_OWN}),
    CashierRole.ADMIN: frozenset({Action.REFUND_ANY, Action.REFUND_OWN, Action.NO_SALE, Action.VOID}),
    CashierRole.NO_SALE: frozenset({Action.NO_SALE}),
    CashierRole.VOID: frozenset({Action.VOID}),
}
LICENSED_ACTIONS = frozenset({Action.SELL, Action.REFUND_OWN, Action.REFUND_ANY})
# A grant is used right away by the action it was asked for; an old one is not reusable.
GRANT_TTL_S = 30.0


def actions_of(roles: list[CashierRole]) -> frozenset[Action]:
    allowed: set[Action] = set()
    for role in roles:
        allowed |= ROLE_ACTIONS.get(role, frozenset())
    return frozenset(allowed)


class PermissionRefused(Refused):
    """Stable ``code`` (session.invalid, session.expired, permission.denied, licence.*) and a message for
    the cashier."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)

    def as_dict(self) -> dict[str, Any]:
        return {"allowed": False, "code": self.code, "message": self.message}


_GATE_ONLY = object()


@dataclass(frozen=True)
class Grant:
    """Permission for one action, now, by one cashier session; only the gate makes them."""

    action: Action
    cashier_id: str
    name: str
    roles: tuple[str, ...]
    session: CashierSession
    issued_monotonic: float = field(default_factory=time.monotonic)
    _made_by: object = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self._made_by is not _GATE_ONLY:
            raise TypeError("a Grant comes only from Gate.authorize")

    @property
    def sale_fields(self) -> dict[str, Any]:
        """What every sale or refund made under this grant must carry."""
        s = self.session
        return {
            "cashier_id": s.cashier_id,
            "point_of_sale": s.point_of_sale,
            "terminal_id": s.terminal_id,
            "operator_code": s.operator_code,
            "till_session_id": s.till_session_id,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "allowed": True,
            "action": self.action.value,
            "name": self.name,
            "roles": list(self.roles),
            **self.sale_fields,
        }


P = ParamSpec("P")
T = TypeVar("T")


def requires(action: Action) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Mark a function that performs ``action``; its first argument (after ``self`` in a method)
    must be a fresh Grant for it.

    ``refund_any`` covers ``refund_own`` (the gate already checked ownership when it
    granted the narrower action).
    """
    covered = {action, Action.REFUND_ANY} if action is Action.REFUND_OWN else {action}

    def decorate(func: Callable[P, T]) -> Callable[P, T]:
        @functools.wraps(func)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
            # The grant comes first, or second after ``self`` in a method.
            grant = next((arg for arg in args[:2] if isinstance(arg, Grant)), kwargs.get("grant"))
            if not isinstance(grant, Grant):
                raise TypeError(f"{func.__qualname__} needs a Grant from Gate.authorize as its first argument")
            if grant.action not in covered:
                raise PermissionRefused(
                    "permission.denied", f"this grant is for {grant.action.value}, not {action.value}"
                )
            if time.monotonic() - grant.issued_monotonic > GRANT_TTL_S:
                raise PermissionRefused("session.invalid", "the permission was granted too long ago; ask again")
            return func(*args, **kwargs)

        return guarded

    return decorate


def make_grant(action: Action, cashier_id: str, name: str, roles: list[CashierRole], session: CashierSession) -> Grant:
    """Used by the gate alone (``agent.cashiers.component``): nothing else may call it."""
    return Grant(action, cashier_id, name, tuple(r.value for r in roles), session, _made_by=_GATE_ONLY)


def parse_action(value: object) -> Action:
    if isinstance(value, str) and value in Action._value2member_map_:
        return Action(value)
    raise PermissionRefused(
        "permission.unknown_action", f"unknown action {value!r}; one of: {', '.join(a.value for a in Action)}"
    )


def check_role(
    action: Action, roles: list[CashierRole], session: CashierSession, sale_till_session: str | None
) -> Action:
    """The action granted (refund_own of another till session becomes refund_any for an
    admin), or PermissionRefused ``permission.denied`` saying which role is missing."""
    allowed = actions_of(roles)
    if action is Action.TECHNICIAN:
        raise PermissionRefused(
            "permission.denied", "technician functions are not for cashiers: a technician uses kassactl"
        )
    if action is Action.REFUND_OWN:
        if sale_till_session is None:
            raise PermissionRefused("permission.denied", "refund_own needs the sale's till session (sale_till_session)")
        if sale_till_session != session.till_session_id:
            if Action.REFUND_ANY in allowed:
                return Action.REFUND_ANY
            raise PermissionRefused(
                "permission.denied", "this sale belongs to another till session; only an admin may refund it"
            )
    if action not in allowed:
        needed = sorted(r.value for r, acts in ROLE_ACTIONS.items() if action in acts)
        raise PermissionRefused(
            "permission.denied",
            f"{action.value} needs the role {' or '.join(needed)}; ask an admin to add it in the cloud",
        )
    return action


class Gate:
    """``authorize`` for every cashier action; the cashiers component owns one (``Cashiers.gate``).

    Built from what it decides with: the store (sessions), the configuration (session
    timeout), the current roster, and the licence's sale verdict for licensed actions.
    """

    def __init__(
        self,
        store: Store,
        config: AgentConfig,
        roster: Callable[[], Roster],
        clock: Callable[[], float],
        end_session: Callable[[CashierSession, str], None],
        sale_verdict: Callable[[], Verdict],
    ) -> None:
        self.store = store
        self.config = config
        self.roster = roster
        self.clock = clock
        self.end_session = end_session
        self.sale_verdict = sale_verdict

    def session_of(self, token: object) -> CashierSession:
        """The open, unexpired session of ``token``; an expired one is ended here."""
        session = sessions.find(self.store.read(), token) if isinstance(token, str) else None
        if session is None:
            raise PermissionRefused("session.invalid", "no open cashier session for this token: log in again")
        timeout_s = self.config.cashiers.session_timeout_s
        now = self.clock()
        if now - session.last_used_at > timeout_s:
            self.end_session(session, "session.expired")
            raise PermissionRefused(
                "session.expired", f"the session ended after {timeout_s / 60:.0f} min without use: log in again"
            )
        if now - session.last_used_at >= sessions.TOUCH_EVERY_S:  # any use keeps it open; no commit (fsync) per scan
            with self.store.transaction() as conn:
                sessions.touch(conn, session, now)
        return session

    def current_cashier(self, token: object) -> tuple[CashierSession, RosterCashier]:
        """The session of ``token`` and its cashier as the current roster has them; a session
        whose cashier left the roster is ended here."""
        session = self.session_of(token)
        cashier = self.roster().by_id.get(session.cashier_id)
        if cashier is None:
            self.end_session(session, "cashier.removed")
            raise PermissionRefused(
                "session.invalid",
                f"cashier {session.cashier_id} is no longer on this terminal's roster; the session ended",
            )
        return session, cashier

    def authorize(self, session_token: str, action: Action | str, *, sale_till_session: str | None = None) -> Grant:
        """A Grant for ``action`` now, or PermissionRefused with a stable code and what to do."""
        wanted = action if isinstance(action, Action) else parse_action(action)
        session = self.session_of(session_token)
        roster = self.roster()
        why_not = roster.allows(session.cashier_id)
        if why_not is not None:
            self.end_session(session, why_not)
            state = "removed from" if why_not == "cashier.removed" else "disabled on"
            raise PermissionRefused(
                "session.invalid", f"cashier {session.cashier_id} was {state} this terminal's roster; the session ended"
            )
        cashier = roster.by_id[session.cashier_id]
        granted = check_role(wanted, list(cashier.roles), session, sale_till_session)
        if granted in LICENSED_ACTIONS:
            verdict = self.sale_verdict()
            if not verdict.ok:
                raise PermissionRefused(verdict.code, verdict.message)
        return make_grant(granted, cashier.cashier_id, cashier.name, list(cashier.roles), session)
