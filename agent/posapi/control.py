"""Control-socket methods for POS access tokens (``kassactl pos token ...``).

Creating and revoking a token is a technician's act (ADMIN); listing is READ. The token
itself appears once, in the answer of ``pos.token.create``; nothing else ever shows it.
"""

from __future__ import annotations

from typing import Any

from agent.control.methods import Method, Params, required_str
from agent.control.permissions import Role
from agent.posapi.component import PosApi


def _create(pos: PosApi, params: Params) -> dict[str, Any]:
    return pos.tokens.create(required_str(params, "label"))


def _list(pos: PosApi, params: Params) -> dict[str, Any]:
    return {"url": pos.url, "tokens": pos.tokens.listing()}


def _revoke(pos: PosApi, params: Params) -> dict[str, Any]:
    return pos.tokens.revoke(required_str(params, "token_id"))


METHODS: tuple[Method[PosApi], ...] = (
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
)
