"""A worker process of the fleet: hundreds of simulated terminals (or bare baseline clients)
on one asyncio loop, one thread.

The orchestrator (run.py, through control.py's ``Swarms``) talks to it over a
``multiprocessing`` pipe: each command is a dict ``{"id", "cmd", "args"}`` answered at once
with ``{"id", ...}``; long work (building terminals, selling) runs as a task on the loop and
shows up in ``stats``. Times are ``time.monotonic()``, which on Linux is one clock for all
processes of the machine.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.fleet.bare import BareClient
from bench.fleet.mqtt_loop import PahoOnLoop
from bench.fleet.terminal import SimTerminal, terminal_config

log = logging.getLogger("bench.fleet.swarm")


def rss_bytes(pid: int | str = "self") -> int:
    """Resident set size of a process (/proc/<pid>/status VmRSS)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU time a process has used so far (/proc/<pid>/stat), 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def worker_main(conn: Connection, index: int, log_path: str, nice: int = 0) -> None:
    """The process entry point (multiprocessing spawn target). ``nice``: lower this process's
    CPU priority, so that simulating thousands of terminals on a few cores does not starve
    the broker and the cloud, which in the field run on machines of their own."""
    if nice:
        os.nice(nice)
    logging.basicConfig(
        filename=log_path, level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s", force=True
    )
    # Thousands of long-lived objects (stores, clients, models): keep them out of full GC passes.
    gc.collect()
    gc.freeze()
    profile_dir = os.environ.get("KASSA_FLEET_PROFILE")  # a directory: cProfile each worker into it
    if profile_dir:
        import cProfile

        cProfile.runctx(
            "asyncio.run(Swarm(conn, index).serve())",
            globals(),
            locals(),
            filename=str(Path(profile_dir) / f"swarm-{index}.prof"),
        )
        return
    asyncio.run(Swarm(conn, index).serve())


class Swarm:
    def __init__(self, conn: Connection, index: int) -> None:
        self.conn = conn
        self.index = index
        self.terminals: list[SimTerminal] = []
        self.bare: list[BareClient] = []
        self.tasks: dict[str, asyncio.Task[Any]] = {}
        self.errors: list[str] = []
        self.built = 0
        self.idle_rss = 0

    async def serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.driver = PahoOnLoop(self.loop)
        self.done = asyncio.Event()
        self.idle_rss = rss_bytes()
        self.loop.add_reader(self.conn.fileno(), self._on_command)
        await self.done.wait()
        self.loop.remove_reader(self.conn.fileno())
        self.driver.close()

    def _on_command(self) -> None:
        try:
            while self.conn.poll():
                message = self.conn.recv()
                try:
                    reply = getattr(self, "cmd_" + message["cmd"])(**message.get("args", {}))
                except Exception:
                    reply = {"error": traceback.format_exc()}
                self.conn.send({"id": message["id"], **(reply or {})})
        except (EOFError, OSError):  # the orchestrator went away
            self.done.set()

    def _spawn(self, name: str, coro: Any) -> None:
        task = self.loop.create_task(coro, name=name)
        self.tasks[name] = task

        def finished(t: asyncio.Task[Any]) -> None:
            if not t.cancelled() and t.exception() is not None:
                text = "".join(traceback.format_exception(t.exception()))
                log.error("task %s failed: %s", name, text)
                self.errors.append(text)

        task.add_done_callback(finished)

    def _busy(self) -> list[str]:
        return [name for name, task in self.tasks.items() if not task.done()]

    # ------------------------------------------------------------------ common
    def cmd_stats(self, since: float | None = None) -> dict[str, Any]:
        """Counters of the whole process; ``connected_since``: clients connected after ``since``."""
        terminals = self.terminals
        stamps = [b.connect_times for b in self.bare] + [
            t.link.mqtt.connect_times for t in terminals if t.link is not None
        ]  # type: ignore[attr-defined]
        return {
            "connected_since": 0 if since is None else sum(bool(times) and times[-1] > since for times in stamps),
            "rss": rss_bytes(),
            "idle_rss": self.idle_rss,
            "busy": self._busy(),
            "errors": self.errors[-3:],
            "built": self.built,
            "terminals": len(terminals),
            "connected": sum(t.connected for t in terminals) + sum(b.connected for b in self.bare),
            "licensed": sum(t.licensed_at is not None for t in terminals),
            "roster_versions": _histogram(t.roster_version for t in terminals),
            "sold": sum(t.sold for t in terminals),
            "refused": sum(t.refused for t in terminals),
            "acked": sum(t.link.acked for t in terminals if t.link is not None) + sum(b.acked for b in self.bare),
            "resent": sum(t.link.resent for t in terminals if t.link is not None),
            "received": sum(len(b.received) > 0 for b in self.bare),
        }

    def cmd_times(self) -> dict[str, Any]:
        """Everything timed per client, for the orchestrator's distributions."""
        if self.bare:
            return {
                "clients": [
                    {
                        "id": b.client_id,
                        "connects": b.connect_times,
                        "attempts": b.attempts,
                        "attempt_times": b.attempt_times,
                        "received": b.received[:1],
                    }
                    for b in self.bare
                ]
            }
        return {
            "clients": [
                {
                    "id": t.device_id,
                    "connects": t.link.mqtt.connect_times if t.link else [],  # type: ignore[attr-defined]
                    "disconnects": t.link.mqtt.disconnect_times if t.link else [],  # type: ignore[attr-defined]
                    "attempts": t.link.mqtt.attempts if t.link else 0,  # type: ignore[attr-defined]
                    "attempt_times": t.link.mqtt.attempt_times if t.link else [],  # type: ignore[attr-defined]
                    "licensed_at": t.licensed_at,
                    "first_sale_at": t.first_sale_at,
                    "rosters": t.roster_times,
                    "roster_arrivals": t.link.mqtt.roster_arrivals if t.link else [],  # type: ignore[attr-defined]
                }
                for t in self.terminals
            ]
        }

    def cmd_outbox(self) -> dict[str, Any]:
        return {"depth": sum(t.outbox_depth() for t in self.terminals)}

    def cmd_stop(self) -> dict[str, Any]:
        self._spawn("stop", self._stop())
        return {}

    async def _stop(self) -> None:
        for client in self.bare:
            client.stop()
        try:
            for terminal in self.terminals:
                try:
                    await terminal.stop()
                except Exception:
                    log.exception("terminal %s did not stop cleanly", terminal.device_id)
            await asyncio.sleep(0.2)
        finally:
            self.done.set()

    # ------------------------------------------------------------------ baseline
    def cmd_bare_build(self, ids: list[str], host: str, port: int) -> dict[str, Any]:
        self.bare = [BareClient(client_id, host, port, self.driver) for client_id in ids]
        return {}

    def cmd_bare_connect(self) -> dict[str, Any]:
        for client in self.bare:
            client.start()
        return {}

    def cmd_bare_publish(self, count: int, payload: bytes) -> dict[str, Any]:
        for client in self.bare:
            client.publish(count, payload)
        return {}

    # ------------------------------------------------------------------ terminals
    def cmd_build(
        self, devices: list[str], state_root: str, mqtt: dict[str, Any], cloud_keys: dict[str, str]
    ) -> dict[str, Any]:
        self._spawn("build", self._build(devices, Path(state_root), mqtt, cloud_keys))
        return {}

    async def _build(
        self, devices: list[str], state_root: Path, mqtt: dict[str, Any], cloud_keys: dict[str, str]
    ) -> None:
        for device_id in devices:
            terminal = SimTerminal(terminal_config(device_id, state_root, mqtt, cloud_keys), self.driver)
            await terminal.build()
            self.terminals.append(terminal)
            self.built += 1
        gc.collect()
        gc.freeze()

    def cmd_connect(self) -> dict[str, Any]:
        self._spawn("connect", self._connect())
        return {}

    async def _connect(self) -> None:
        for terminal in self.terminals:
            await terminal.connect()  # CloudLink.start: attaches components, starts the MQTT runner

    def cmd_bind(self, keys: dict[str, str]) -> dict[str, Any]:
        for terminal in self.terminals:
            terminal.enter_licence_key(keys[terminal.device_id])
        return {}

    def cmd_sell(self, count: int) -> dict[str, Any]:
        self._spawn("sell", self._sell(count))
        return {}

    async def _sell(self, count: int) -> None:
        """Every terminal sells ``count`` sales; terminals take turns, one sale at a time, and
        the loop runs between sales (the drain sends while others still sell)."""
        for _ in range(count):
            for terminal in self.terminals:
                terminal.sell_one()
                await asyncio.sleep(0)


def _histogram(values: Any) -> dict[int, int]:
    counts: dict[int, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts
