"""What `kassactl diagnostics` bundles for support. Secrets never leave: the config is redacted
and log lines were masked when they were written."""

from __future__ import annotations

import asyncio
import platform
import sqlite3
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

from agent.config import AgentConfig, redacted
from agent.control.methods import Method, Params
from agent.control.permissions import Role
from agent.hardware.component import Hardware
from agent.logbuffer import LogBuffer

PACKAGES = ("kassa", "python-escpos", "paho-mqtt", "pydantic", "pyserial", "pyusb", "APScheduler", "cryptography")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version, "platform": platform.platform()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


HIDDEN = "(hidden)"


class Host(Protocol):
    config: AgentConfig
    log_buffer: LogBuffer

    def status(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Diagnostics:
    """What the bundle reads: the agent process, its store file and the hardware."""

    host: Host
    store_path: Path
    hardware: Hardware


def _integrity(store_path: Path) -> list[str]:
    # its own connection: a full check takes a while and must not hold the loop's reader
    conn = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True, timeout=10)
    try:
        return [row[0] for row in conn.execute("PRAGMA integrity_check(20)")]
    finally:
        conn.close()


def _hide_pairing_code(status: dict[str, Any]) -> dict[str, Any]:
    """A waiting pairing code lets whoever holds it claim the terminal into their company: it
    stays on the terminal (kassactl status, the printed slip), never in a bundle sent away."""
    pairing = status.get("components", {}).get("pairing")
    code = pairing.get("pairing_code") if isinstance(pairing, dict) else None
    if code:
        pairing["pairing_code"] = HIDDEN
        pairing["summary"] = str(pairing.get("summary", "")).replace(code, HIDDEN)
    return status


async def collect(diagnostics: Diagnostics) -> dict[str, Any]:
    host, hardware = diagnostics.host, diagnostics.hardware
    integrity = await asyncio.to_thread(_integrity, diagnostics.store_path)
    return {
        "status": _hide_pairing_code(host.status()),
        "config": redacted(host.config),
        "versions": versions(),
        "store_integrity": integrity,
        "logs": host.log_buffer.recent(2000),
        "devices": hardware.status(),
        "print_jobs": [job.as_dict() for job in hardware.queue.recent(50)],
    }


async def _diagnostics(diagnostics: Diagnostics, params: Params) -> dict[str, Any]:
    return await collect(diagnostics)


METHODS: tuple[Method[Diagnostics], ...] = (
    Method(
        "diagnostics",
        Role.ADMIN,
        "Everything support needs: status, config minus secrets, versions, logs, devices, store integrity.",
        _diagnostics,
    ),
)
