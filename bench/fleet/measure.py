"""What both phases measure alike: the broker they start, its memory and restart, the clients' time distributions."""

from __future__ import annotations

import time
from typing import Any

from bench._stats import percentile
from bench.fleet.control import Run, Swarms
from bench.fleet.swarm import rss_bytes
from broker.launcher import Mosquitto

BROKER_EXTRA = "autosave_interval 60\nset_tcp_nodelay true\n"


def distribution(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {"n": 0}
    return {
        "n": len(samples),
        "p50_s": round(percentile(samples, 50), 3),
        "p90_s": round(percentile(samples, 90), 3),
        "max_s": round(max(samples), 3),
    }


def first_after(stamps: list[float], moment: float) -> float | None:
    later = [s for s in stamps if s > moment]
    return min(later) if later else None


def connect_all(run: Run, swarms: Swarms, method: str, device_count: int, out: dict[str, Any]) -> None:
    """Every client connects at once (`method` on every worker); the time until the last is in."""
    t0 = time.monotonic()
    swarms.call_all(method)
    run.wait("connect", lambda: _count(swarms.stats()["connected"], device_count, "connected"))
    connect = [first_after(c["connects"], t0) - t0 for c in swarms.times()]  # type: ignore[operator]
    out["connect_all_s"] = round(max(connect), 3)
    out["connect"] = distribution(connect)


def _count(value: int, wanted: int, what: str) -> tuple[bool, str]:
    return value >= wanted, f"{value}/{wanted} {what}"


def _memory(stats: dict[str, Any], broker: Mosquitto, broker_idle: int, count: int) -> dict[str, Any]:
    """RSS of the worker processes and of the broker, less what each had before any client."""
    workers = sum(stats["rss"])
    idle = sum(stats["idle_rss"])
    broker_rss = _broker_rss(broker)
    return {
        "workers_rss_mb": round(workers / 2**20, 1),
        "workers_idle_rss_mb": round(idle / 2**20, 1),
        "per_device_kb": round((workers - idle) / count / 1024, 1),
        "broker_rss_mb": round(broker_rss / 2**20, 1),
        "broker_idle_rss_mb": round(broker_idle / 2**20, 1),
        "broker_per_device_kb": round((broker_rss - broker_idle) / count / 1024, 1),
    }


def _broker_rss(broker: Mosquitto) -> int:
    return rss_bytes(broker.process.pid) if broker.process is not None else 0


def _restart(run: Run, broker: Mosquitto, swarms: Swarms, count: int) -> dict[str, Any]:
    killed = time.monotonic()
    broker.restart(hard=run.o.restart == "kill", timeout_s=30)  # same port, same persistence
    up = time.monotonic()
    run.say(
        f"  broker {'stopped' if run.o.restart == 'term' else 'killed'} and listening again after {up - killed:.2f} s"
    )
    run.wait("reconnect", lambda: _count(swarms.stats(since=killed)["connected_since"], count, "reconnected"))
    clients = swarms.times()
    back = [first_after(c["connects"], killed) - killed for c in clients]  # type: ignore[operator]
    # The first attempt after the disconnect: when the backoff let each client try again.
    tried = [t - killed for t in (first_after(c.get("attempt_times", []), killed) for c in clients) if t is not None]
    return {
        "killed_at": killed,
        "broker_down_s": round(up - killed, 3),
        "reconnect_all_s": round(max(back), 3),
        "reconnect": distribution(back),
        "first_attempt": distribution(tried),
    }
