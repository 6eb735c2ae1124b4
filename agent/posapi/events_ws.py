"""WebSocket ``/v1/events``: the agent's event stream (agent/events.py) as JSON messages.

Authentication is the first message, not the URL: ``{"token": "<POS token>"}`` (optionally
``"kinds": ["scan", ...]`` to narrow the stream), sent within ``AUTH_TIMEOUT_S``. A token in
a query string would end up in browser histories and proxy logs. Browsers cannot set an
Authorization header on a WebSocket, and CORS does not apply to it, so the ``Origin`` is
checked here against ``[pos_api] cors_origins`` (or must be the API's own origin); a forbidden
one gets HTTP 403 instead of the upgrade, so there is no WebSocket to send a close code on.

Server messages: ``{"kind": "hello", ...}`` once, then one object per event
``{"kind": ..., "at": <unix s>, ...}``; ``{"kind": "events.dropped", "count": n}`` when a slow
reader lost events; ``{"kind": "error", "error": {code, message}}`` before a refusal close.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect

from agent.posapi.errors import ApiError
from agent.posapi.service import PosService

log = logging.getLogger(__name__)

AUTH_TIMEOUT_S = 10.0
# Event kinds a POS sees (prefix match). Anything else on the bus stays inside the agent.
FORWARDED = (
    "scan",
    "printer.",
    "print.",
    "drawer",
    "device.",
    "cashier.",
    "cashiers.",
    "licence",
    "sale",
    "refund",
    "report",
    "till.",
    "provisioning",
)
NEVER_SENT = frozenset({"token", "pin", "pin_hash", "session_token"})
CLOSE_UNAUTHORIZED = 4401
CLOSE_GOING_AWAY = 1001


def forwarded(kind: str) -> bool:
    return any(kind == p or (p.endswith(".") and kind.startswith(p)) or kind.startswith(p + ".") for p in FORWARDED)


def origin_allowed(websocket: WebSocket, allowed: list[str]) -> bool:
    origin = websocket.headers.get("origin")
    if origin is None:  # not a browser: the token is what counts
        return True
    if origin in allowed:
        return True
    host = websocket.headers.get("host", "")
    return origin.split("://", 1)[-1] == host  # same origin as the API


async def _refuse_origin(websocket: WebSocket) -> None:
    """Answer the handshake with 403 and the POS API's JSON error (browsers hide it; other clients can read it)."""
    origin = websocket.headers.get("origin", "")[:200]
    log.warning("POS event stream refused: origin not allowed", extra={"origin": origin})
    refusal = ApiError(
        "pos.origin_forbidden", f"origin {origin!r} may not open the event stream; add it to [pos_api] cors_origins"
    )
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(refusal.response())
    else:  # a server without the denial-response extension answers a close before accept with a bare 403
        await websocket.close()


async def _refuse(websocket: WebSocket, code: str, message: str, close_code: int) -> None:
    await websocket.send_text(json.dumps({"kind": "error", "error": {"code": code, "message": message}}))
    await websocket.close(close_code)


async def events(websocket: WebSocket) -> None:
    pos: PosService = websocket.app.state.pos
    if not origin_allowed(websocket, pos.config.cors_origins):
        await _refuse_origin(websocket)
        return
    await websocket.accept()
    try:
        first = await asyncio.wait_for(websocket.receive_text(), AUTH_TIMEOUT_S)
        hello = json.loads(first)
        if not isinstance(hello, dict):
            raise ValueError
    except (TimeoutError, ValueError, KeyError, RecursionError):  # RecursionError: JSON nested too deep
        await _refuse(
            websocket, "pos.token_missing", 'send {"token": "<POS token>"} as the first message', CLOSE_UNAUTHORIZED
        )
        return
    except WebSocketDisconnect:
        return
    entry = pos.tokens.check(hello.get("token") if isinstance(hello.get("token"), str) else None)
    if entry is None:
        await _refuse(websocket, "pos.token_invalid", "the POS access token is unknown or revoked", CLOSE_UNAUTHORIZED)
        return
    kinds = hello.get("kinds")
    wanted = {k for k in kinds if isinstance(k, str)} if isinstance(kinds, list) else None
    subscription = pos.runtime.events.subscribe(wanted)
    pos.websockets += 1
    try:
        await websocket.send_text(
            json.dumps(
                {"kind": "hello", "device_id": pos.runtime.device_id, "kinds": sorted(wanted) if wanted else None}
            )
        )
        reader = asyncio.create_task(_drain_incoming(websocket))
        dropped = 0
        while not reader.done() and not pos.closing:
            try:
                event = await subscription.next(1.0)
            except TimeoutError:
                if not pos.tokens.is_active(entry.token_id):
                    await _refuse(
                        websocket, "pos.token_invalid", "the POS access token was revoked", CLOSE_UNAUTHORIZED
                    )
                    return
                continue
            if subscription.dropped != dropped:
                await websocket.send_text(
                    json.dumps({"kind": "events.dropped", "count": subscription.dropped - dropped})
                )
                dropped = subscription.dropped
            if forwarded(event.kind):
                await websocket.send_text(json.dumps(_clean(event.as_dict()), default=str))
        if pos.closing:
            await websocket.close(CLOSE_GOING_AWAY)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # the client went away
    finally:
        subscription.close()
        pos.websockets -= 1
        if "reader" in locals():
            reader.cancel()


async def _drain_incoming(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends; ends when it disconnects."""
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
    except Exception:
        return


def _clean(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in NEVER_SENT}
