"""Serve the control methods on a Unix socket, one JSON-RPC 2.0 object per line.

The methods come as one table (agent/wiring.py joins each package's declared methods). A
refusal (agent/refusal.py) raised by a method is answered here, in one place: the error
``REFUSED`` with the stable code, the message and its details as ``data``.
"""

from __future__ import annotations

import asyncio
import grp
import inspect
import json
import logging
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.control.methods import BoundMethod, MethodError
from agent.control.permissions import Authorizer, PeerCredentials, Role, peer_credentials
from agent.refusal import Refused

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 64 * 1024
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR = -32700, -32600, -32601, -32602, -32603
PERMISSION_DENIED = -32001
REFUSED = -32010  # a business refusal: data carries its stable code (cashier.wrong_pin, licence.expired, ...)


@dataclass(frozen=True)
class Stream:
    """A method's answer that goes on: items arrive as ``<method>.item`` notifications."""

    req_id: Any
    method: str
    items: AsyncIterator[Any]


class ControlServer:
    def __init__(self, methods: Mapping[str, BoundMethod], path: Path, authorizer: Authorizer) -> None:
        self.methods = methods
        self.path = path
        self.authorizer = authorizer
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() or self.path.is_symlink():
            self.path.unlink()  # a stale socket from a killed agent
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path), limit=MAX_REQUEST_BYTES)
        os.chmod(self.path, 0o660)
        try:
            os.chown(self.path, -1, grp.getgrnam(self.authorizer.admin_group).gr_gid)
        except KeyError:
            log.info(
                "admin group does not exist; socket stays in the agent's group",
                extra={"group": self.authorizer.admin_group},
            )
        except PermissionError:
            log.warning(
                "cannot give the control socket to the admin group", extra={"group": self.authorizer.admin_group}
            )
        log.info("control socket listening", extra={"path": str(self.path)})

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None
        if self.path.exists():
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            peer = peer_credentials(writer.get_extra_info("socket"))
            role = self.authorizer.role_of(peer)
            while True:
                try:
                    line = await reader.readline()
                except (asyncio.LimitOverrunError, ValueError):
                    await self._send(
                        writer, _error(None, INVALID_REQUEST, f"request longer than {MAX_REQUEST_BYTES} bytes")
                    )
                    break
                if not line:
                    break
                reply = await self.handle_line(line, peer, role)
                if isinstance(reply, Stream):
                    await self._stream(reader, writer, reply)
                    break
                await self._send(writer, reply)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()

    async def _stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stream: Stream) -> None:
        """Send each item as a notification until the iterator ends or the client hangs up."""
        hangup = asyncio.ensure_future(reader.read())  # EOF (b"") when the client goes away
        following: asyncio.Future[Any] | None = None
        count = 0
        try:
            iterator = stream.items.__aiter__()
            while True:
                following = asyncio.ensure_future(iterator.__anext__())
                done, _ = await asyncio.wait({following, hangup}, return_when=asyncio.FIRST_COMPLETED)
                if hangup in done:
                    return
                try:
                    item = following.result()
                except StopAsyncIteration:
                    break
                await self._send(writer, {"jsonrpc": "2.0", "method": f"{stream.method}.item", "params": item})
                count += 1
            await self._send(writer, {"jsonrpc": "2.0", "id": stream.req_id, "result": {"items": count}})
        finally:
            hangup.cancel()
            # A generator still running its __anext__ refuses aclose() ("asynchronous generator is
            # already running"): cancel that step and let it unwind before closing.
            if following is not None and not following.done():
                following.cancel()
                await asyncio.gather(following, return_exceptions=True)
            aclose = getattr(stream.items, "aclose", None)
            if aclose is not None:
                await aclose()

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, reply: dict[str, Any]) -> None:
        writer.write(json.dumps(reply, default=str).encode() + b"\n")
        await writer.drain()

    async def handle_line(self, line: bytes, peer: PeerCredentials, role: Role) -> dict[str, Any] | Stream:
        try:
            request = json.loads(line)
        except (ValueError, RecursionError) as exc:  # also numbers over 4300 digits and too deep nesting
            return _error(None, PARSE_ERROR, f"not JSON: {exc}")
        if (
            not isinstance(request, dict)
            or request.get("jsonrpc") != "2.0"
            or not isinstance(request.get("method"), str)
        ):
            return _error(None, INVALID_REQUEST, 'expected {"jsonrpc": "2.0", "method": ..., "id": ...}')
        req_id = request.get("id")
        params = request.get("params", {})
        if not isinstance(params, dict):
            return _error(req_id, INVALID_PARAMS, "params must be an object")
        method = self.methods.get(request["method"])
        if method is None:
            return _error(req_id, METHOD_NOT_FOUND, f"no method {request['method']!r}; 'methods' lists them")
        if role < method.role:
            log.warning(
                "control method denied", extra={"method": method.name, "uid": peer.uid, "role": role.name.lower()}
            )
            return _error(
                req_id,
                PERMISSION_DENIED,
                f"'{method.name}' needs the {method.role.name.lower()} role; add the user to group "
                f"'{self.authorizer.admin_group if method.role is Role.ADMIN else self.authorizer.read_group}' or run "
                f"as root",
            )
        try:
            result = method.call(params)
            if inspect.isawaitable(result):
                result = await result
        except MethodError as exc:
            return _error(req_id, exc.code, str(exc), exc.data)
        except Refused as exc:
            return _error(req_id, REFUSED, exc.message, {"code": exc.code, "message": exc.message, **exc.details})
        except Exception as exc:  # a bug in one method must not take the socket down
            log.exception("control method failed", extra={"method": method.name})
            return _error(req_id, INTERNAL_ERROR, f"internal error in {method.name}: {exc}")
        if method.role is Role.ADMIN:
            log.info("control method called", extra={"method": method.name, "uid": peer.uid})
        if hasattr(result, "__aiter__"):
            return Stream(req_id, method.name, result)
        return {"jsonrpc": "2.0", "id": req_id, "result": result}


def _error(req_id: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": req_id, "error": error}
