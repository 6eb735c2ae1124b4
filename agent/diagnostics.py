"""What `kassactl diagnostics` bundles for support. Secrets never leave: the config is redacted
and log lines were masked when they were written."""

from __future__ import annotations

import asyncio
import platform
import sqlite3
from importlib import metadata
from typing import TYPE_CHECKING, Any

from agent.config import redacted

if TYPE_CHECKING:
    from agent.daemon import Agent

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


def _integrity(agent: Agent) -> list[str]:
    assert agent.store is not None
    # its own connection: a full check takes a while and must not hold the loop's reader
    conn = sqlite3.connect(f"file:{agent.store.path}?mode=ro", uri=True, timeout=10)
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


async def collect(agent: Agent) -> dict[str, Any]:
    integrity = await asyncio.to_thread(_integrity, agent)
    bundle: dict[str, Any] = {
        "status": _hide_pairing_code(agent.status()),
        "config": redacted(agent.config),
        "versions": versions(),
        "store_integrity": integrity,
        "logs": agent.log_buffer.recent(2000),
    }
    try:
        hardware = agent.component("hardware")
        bundle["devices"] = hardware.status()
        bundle["print_jobs"] = [job.as_dict() for job in hardware.queue.recent(50)]
    except LookupError:
        bundle["devices"] = None
    return bundle
