"""A blocking JSON-RPC client for the agent's control socket (kassactl, tests, the demo)."""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# 3: the agent answered and what was asked about is not OK (status, devices, licence check), as
# `systemctl is-active` answers 3 for a unit that is not active; 69 and 77 are sysexits.h's.
EXIT_OK, EXIT_ERROR, EXIT_NOT_OK, EXIT_UNAVAILABLE, EXIT_NOPERM = 0, 1, 3, 69, 77
PERMISSION_DENIED = -32001


class ControlError(Exception):
    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def confirm(what: str) -> None:
    """Ask before a command that cannot be undone: on a terminal a person answers; anywhere else
    (a script, a pipe) only --yes goes ahead, so nothing is given up by accident."""
    if not sys.stdin.isatty():
        raise ControlError(f"{what}.\nNot done: standard input is not a terminal; add --yes to go ahead.")
    answer = input(f"{what}.\nGo ahead? [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        raise ControlError("not done")


class ControlClient:
    def __init__(self, path: Path, timeout_s: float = 30.0) -> None:
        self.path = path
        self.timeout_s = timeout_s
        self._next_id = 0

    def call(self, method: str, **params: Any) -> Any:
        with self._connect() as sock:
            request_id = self._send(sock, method, params)
            for message in _messages(sock):
                if message.get("id") == request_id:
                    return _result(message)
        raise ControlError("the agent closed the connection without answering", EXIT_UNAVAILABLE)

    def stream(self, method: str, **params: Any) -> Iterator[Any]:
        """Yield each item of a streaming method until it ends (or the caller stops iterating)."""
        with self._connect(timeout_s=None) as sock:
            request_id = self._send(sock, method, params)
            for message in _messages(sock):
                if message.get("method") == f"{method}.item":
                    yield message.get("params")
                elif message.get("id") == request_id:
                    _result(message)
                    return

    def _connect(self, timeout_s: float | None = -1.0) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout_s if timeout_s == -1.0 else timeout_s)
        try:
            sock.connect(str(self.path))
        except FileNotFoundError:
            sock.close()
            raise ControlError(
                f"the agent is not running (no control socket at {self.path}). Start it: systemctl start kassa-agent",
                EXIT_UNAVAILABLE,
            ) from None
        except ConnectionRefusedError:
            sock.close()
            raise ControlError(
                (
                    f"the agent is not answering on {self.path} (stopped or restarting). Check: systemctl status "
                    f"kassa-agent"
                ),
                EXIT_UNAVAILABLE,
            ) from None
        except PermissionError:
            sock.close()
            raise ControlError(
                f"permission denied on {self.path}: run as root or join the 'kassa-admin' group", EXIT_NOPERM
            ) from None
        return sock

    def _send(self, sock: socket.socket, method: str, params: dict[str, Any]) -> int:
        self._next_id += 1
        request = {"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params}
        sock.sendall(json.dumps(request).encode() + b"\n")
        return self._next_id


def _messages(sock: socket.socket) -> Iterator[dict[str, Any]]:
    buffer = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            raise ControlError("the agent did not answer in time", EXIT_UNAVAILABLE) from None
        if not chunk:
            return
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield json.loads(line)


def _result(message: dict[str, Any]) -> Any:
    if "error" in message:
        error = message["error"]
        raise ControlError(
            error.get("message", "unknown error"), EXIT_NOPERM if error.get("code") == PERMISSION_DENIED else EXIT_ERROR
        )
    return message.get("result")
