"""``kassactl``: the field technician's command line, speaking to the agent's control socket."""

from __future__ import annotations

import argparse
import json
import socket
import sys
from pathlib import Path
from typing import Any

from agent.config import DEFAULT_CONFIG_PATH, ConfigError, load_config

DEFAULT_SOCKET = Path("/run/kassa/control.sock")
EXIT_OK, EXIT_ERROR, EXIT_UNAVAILABLE, EXIT_NOPERM = 0, 1, 69, 77


class ControlError(Exception):
    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class ControlClient:
    """A blocking JSON-RPC client for the control socket (also used by tests and the demo)."""

    def __init__(self, path: Path, timeout_s: float = 10.0) -> None:
        self.path = path
        self.timeout_s = timeout_s
        self._next_id = 0

    def call(self, method: str, **params: Any) -> Any:
        self._next_id += 1
        request = {"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params}
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout_s)
                sock.connect(str(self.path))
                sock.sendall(json.dumps(request).encode() + b"\n")
                reply = _read_line(sock)
        except FileNotFoundError:
            raise ControlError(f"the agent is not running (no control socket at {self.path}). Start it: systemctl start kassa-agent", EXIT_UNAVAILABLE) from None
        except ConnectionRefusedError:
            raise ControlError(f"the agent is not answering on {self.path} (stopped or restarting). Check: systemctl status kassa-agent", EXIT_UNAVAILABLE) from None
        except PermissionError:
            raise ControlError(f"permission denied on {self.path}: run as root or join the 'kassa-admin' group", EXIT_NOPERM) from None
        except TimeoutError:
            raise ControlError(f"the agent did not answer within {self.timeout_s:.0f} s", EXIT_UNAVAILABLE) from None
        if "error" in reply:
            error = reply["error"]
            raise ControlError(error.get("message", "unknown error"), EXIT_NOPERM if error.get("code") == -32001 else EXIT_ERROR)
        return reply["result"]


def _read_line(sock: socket.socket) -> dict[str, Any]:
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        if chunk.endswith(b"\n"):
            break
    if not chunks:
        raise ControlError("the agent closed the connection without answering", EXIT_UNAVAILABLE)
    return json.loads(b"".join(chunks))


def format_status(status: dict[str, Any]) -> str:
    store = status.get("store") or {}
    lines = [
        f"device      {status['device_id']}  (kassa {status['version']}, {status['state']})",
        f"boot        #{status['boot_count']} id {status['boot_id']}, up {status['uptime_s']:.0f} s",
        f"store       {store.get('path', '-')}  schema v{store.get('schema_version', '?')}, integrity {store.get('integrity', '?')}, {store.get('size_bytes', 0) // 1024} KiB",
    ]
    if status.get("restart_needed"):
        lines.append(f"restart     needed for: {', '.join(status['restart_needed'])}")
    for name, component in sorted(status.get("components", {}).items()):
        summary = component.get("summary") or ", ".join(f"{k}={v}" for k, v in component.items() if not isinstance(v, (dict, list)))
        lines.append(f"{name:<11} {summary}")
    jobs = ", ".join(job["name"] for job in status.get("scheduler", []))
    lines.append(f"jobs        {jobs or '-'}")
    return "\n".join(lines)


def _socket_path(args: argparse.Namespace) -> Path:
    if args.socket:
        return args.socket
    if args.config:
        return load_config(args.config).paths.control_socket
    if DEFAULT_CONFIG_PATH.exists():
        try:
            return load_config(DEFAULT_CONFIG_PATH).paths.control_socket
        except ConfigError:
            pass
    return DEFAULT_SOCKET


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kassactl", description="Talk to the local kassa agent.")
    parser.add_argument("--socket", type=Path, help=f"control socket (default: from the config, else {DEFAULT_SOCKET})")
    parser.add_argument("-c", "--config", type=Path, help="agent config file to find the socket in")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("status", help="agent, store and component status")
    sub.add_parser("ping", help="check the agent answers")
    sub.add_parser("methods", help="list control methods and the role each needs")
    sub.add_parser("reload", help="re-read the config file (like SIGHUP)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        client = ControlClient(_socket_path(args))
        method = {"reload": "config.reload"}.get(args.command, args.command)
        result = client.call(method)
    except ConfigError as exc:
        print(f"kassactl: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except ControlError as exc:
        print(f"kassactl: {exc}", file=sys.stderr)
        return exc.exit_code
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    elif args.command == "status":
        print(format_status(result))
    elif args.command == "methods":
        for m in result:
            print(f"{m['name']:<20} {m['role']:<6} {m['summary']}")
    elif args.command == "reload":
        print(f"applied: {', '.join(result['applied']) or '-'}; restart needed: {', '.join(result['restart_needed']) or '-'}")
        if result.get("error"):
            print(f"error: {result['error']}", file=sys.stderr)
            return EXIT_ERROR
    else:
        print(json.dumps(result, default=str))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
