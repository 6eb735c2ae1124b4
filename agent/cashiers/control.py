"""Control-socket methods of the cashiers component (the POS API will call the same methods).

Roles: login, logout, session and authorize need only the READ role. The POS front-end
runs as a member of the read group; what protects cashier actions is the cashier's PIN
(with the lockout) and the session token, not the socket role, and a READ peer can do
nothing without them. ``cashiers.load`` is ADMIN (a technician's action; cashiers get
their "Load" button through the POS API).

A refused login or session call is a JSON-RPC error ``REFUSED`` whose ``data`` carries the
stable code (``cashier.wrong_pin``, ``session.expired``, ...); ``cashier.authorize``
answers a refusal as a normal result ``{"allowed": false, "code": ..., "message": ...}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.cashiers.login import LoginRefused
from agent.cashiers.permissions import PermissionRefused
from agent.control.methods import Method, MethodError, register
from agent.control.permissions import Role

if TYPE_CHECKING:
    from agent.cashiers.component import Cashiers
    from agent.daemon import Agent

REFUSED = -32010


def _cashiers(agent: Agent) -> Cashiers:
    try:
        return agent.component("cashiers")
    except LookupError:
        raise MethodError("the cashiers component is not running; check the agent log") from None


def _text(params: dict[str, Any], name: str, required: bool = True) -> str | None:
    value = params.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise MethodError(f"parameter '{name}' is required and must be a non-empty string", -32602)
    return value


def _refused(exc: LoginRefused | PermissionRefused) -> MethodError:
    data = exc.as_dict()
    data.pop("allowed", None)
    return MethodError(exc.message, REFUSED, data)


async def _login(agent: Agent, params: dict[str, Any]) -> dict[str, Any]:
    cashiers = _cashiers(agent)
    try:
        result = await cashiers.login(
            _text(params, "code"), _text(params, "pin"), _text(params, "point_of_sale", required=False)
        )  # type: ignore[arg-type]
    except LoginRefused as exc:
        raise _refused(exc) from None
    return result.as_dict(agent.config.cashiers.session_timeout_s)


def _logout(agent: Agent, params: dict[str, Any]) -> dict[str, Any]:
    try:
        return _cashiers(agent).logout(_text(params, "token"))  # type: ignore[arg-type]
    except PermissionRefused as exc:
        raise _refused(exc) from None


def _session(agent: Agent, params: dict[str, Any]) -> dict[str, Any]:
    try:
        return _cashiers(agent).session(_text(params, "token"))  # type: ignore[arg-type]
    except PermissionRefused as exc:
        raise _refused(exc) from None


def _authorize(agent: Agent, params: dict[str, Any]) -> dict[str, Any]:
    token, action = _text(params, "token"), _text(params, "action")
    sale_till_session = _text(params, "sale_till_session", required=False)
    try:
        return _cashiers(agent).authorize(token, action, sale_till_session=sale_till_session).as_dict()  # type: ignore[arg-type]
    except PermissionRefused as exc:
        return exc.as_dict()


def _list(agent: Agent, params: dict[str, Any]) -> dict[str, Any]:
    return _cashiers(agent).listing()


async def _load(agent: Agent, params: dict[str, Any]) -> dict[str, Any]:
    from agent.cashiers.component import LoadError

    try:
        return await _cashiers(agent).load()
    except LoadError as exc:
        raise MethodError(str(exc)) from None


for _method in (
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
):
    register(_method)
