"""Control-socket methods for POS access tokens (``kassactl pos token ...``).

Creating and revoking a token is a technician's act (ADMIN); listing is READ. The token
itself appears once, in the answer of ``pos.token.create``; nothing else ever shows it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.control.methods import Method, MethodError, register, str_param
from agent.control.permissions import Role

if TYPE_CHECKING:
    from agent.daemon import Agent
    from agent.posapi.component import PosApi


def _pos(agent: Agent) -> PosApi:
    try:
        return agent.component("pos_api")
    except LookupError:
        raise MethodError("the POS API component is not running; check the agent log") from None


def _create(agent: Agent, params: dict[str, Any]) -> dict[str, Any]:
    from agent.posapi.tokens import TokenError

    try:
        return _pos(agent).tokens.create(str_param(params, "label", required=True))  # type: ignore[arg-type]
    except TokenError as exc:
        raise MethodError(str(exc), -32602) from None


def _list(agent: Agent, params: dict[str, Any]) -> dict[str, Any]:
    pos = _pos(agent)
    return {"url": pos.url, "tokens": pos.tokens.listing()}


def _revoke(agent: Agent, params: dict[str, Any]) -> dict[str, Any]:
    from agent.posapi.tokens import TokenError

    try:
        return _pos(agent).tokens.revoke(str_param(params, "token_id", required=True))  # type: ignore[arg-type]
    except TokenError as exc:
        raise MethodError(str(exc)) from None


for _method in (
    Method(
        "pos.token.create", Role.ADMIN, "Create a POS access token (params: label); the token is shown once.", _create
    ),
    Method(
        "pos.token.list",
        Role.READ,
        "POS access tokens: id, label, created, last used, revoked (never the token).",
        _list,
    ),
    Method(
        "pos.token.revoke",
        Role.ADMIN,
        "Revoke a POS access token (params: token_id); its POS is refused at once.",
        _revoke,
    ),
):
    register(_method)
