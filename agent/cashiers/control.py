"""Control-socket methods of the cashiers component (the POS API will call the same methods).

Roles: login, logout, session and authorize need only the READ role. The POS front-end
runs as a member of the read group; what protects cashier actions is the cashier's PIN
(with the lockout) and the session token, not the socket role, and a READ peer can do
nothing without them. ``cashiers.load`` is ADMIN (a technician's action; cashiers get
their "Load" button through the POS API).

A refused login or session call is a refusal (agent/refusal.py), which the server answers as
the JSON-RPC error ``REFUSED`` whose ``data`` carries the stable code (``cashier.wrong_pin``,
``session.expired``, ...); ``cashier.authorize`` answers a refusal as a normal result
``{"allowed": false, "code": ..., "message": ...}``.
"""

from __future__ import annotations

from typing import Any

from agent.cashiers.component import Cashiers
from agent.cashiers.permissions import PermissionRefused
from agent.control.methods import Method, MethodError, Params
from agent.control.permissions import Role


def _text(params: Params, name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value:
        raise MethodError(f"parameter '{name}' is required and must be a non-empty string", -32602)
    return value


def _optional_text(params: Params, name: str) -> str | None:
    return None if params.get(name) is None else _text(params, name)


async def _login(cashiers: Cashiers, params: Params) -> dict[str, Any]:
    result = await cashiers.login(_text(params, "code"), _text(params, "pin"), _optional_text(params, "point_of_sale"))
    return result.as_dict(cashiers.config.cashiers.session_timeout_s)


def _logout(cashiers: Cashiers, params: Params) -> dict[str, Any]:
    return cashiers.logout(_text(params, "token"))


def _session(cashiers: Cashiers, params: Params) -> dict[str, Any]:
    return cashiers.session(_text(params, "token"))


def _authorize(cashiers: Cashiers, params: Params) -> dict[str, Any]:
    token, action = _text(params, "token"), _text(params, "action")
    sale_till_session = _optional_text(params, "sale_till_session")
    try:
        return cashiers.authorize(token, action, sale_till_session=sale_till_session).as_dict()
    except PermissionRefused as exc:
        return exc.as_dict()


def _list(cashiers: Cashiers, params: Params) -> dict[str, Any]:
    return cashiers.listing()


async def _load(cashiers: Cashiers, params: Params) -> dict[str, Any]:
    return await cashiers.load()


METHODS: tuple[Method[Cashiers], ...] = (
    Method(
        "cashier.login",
        Role.READ,
        "Log a cashier in offline (params: code, pin, point_of_sale); returns a session token and its details.",
        _login,
    ),
    Method("cashier.logout", Role.READ, "End a cashier session (params: token).", _logout),
    Method(
        "cashier.session",
        Role.READ,
        "Who a session is: cashier, roles, point-of-sale details, expiry (params: token).",
        _session,
    ),
    Method(
        "cashier.authorize",
        Role.READ,
        "May this session do an action now (params: token, action, sale_till_session)? allowed or the refusal.",
        _authorize,
    ),
    Method("cashiers.list", Role.READ, "The cached cashier roster (no PIN hashes), its version and lockouts.", _list),
    Method("cashiers.load", Role.ADMIN, "Ask the cloud for the current roster now; version before and after.", _load),
)
