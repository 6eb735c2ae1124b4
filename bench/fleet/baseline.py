"""The baseline phase: N bare paho clients (bench/fleet/bare.py) through the same measurements as the fleet."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.fleet import bare
from bench.fleet.control import Run, Swarms, chunks
from bench.fleet.measure import BROKER_EXTRA, _broker_rss, _count, _memory, _restart, connect_all, distribution
from broker.launcher import Mosquitto


def run_baseline(
    run: Run, workdir: Path, device_count: int, processes: int, sale_payload: bytes, roster_payload: bytes
) -> dict[str, Any]:
    o = run.o
    out: dict[str, Any] = {}
    run.say(f"\n== baseline: {device_count} bare paho clients, {processes} worker processes ==")
    broker = Mosquitto(workdir / "broker-baseline", extra_config=BROKER_EXTRA).start()
    broker_idle = _broker_rss(broker)
    swarms = Swarms(processes, workdir, o.nice)
    try:
        ids = [f"bare-{i:05d}" for i in range(device_count)]
        idle = swarms.stats()
        swarms.call_each(
            "bare_build", [{"ids": part, "host": broker.host, "port": broker.port} for part in chunks(ids, processes)]
        )

        connect_all(run, swarms, "bare_connect", device_count, out)
        broker_connected = _broker_rss(broker)

        # N*K publishes through the broker to one subscriber
        total = device_count * o.sales
        consumer = bare.Consumer(broker.host, broker.port, f"{bare.BARE_PREFIX}/+/up/#")
        consumer.subscribed.wait(10)
        t0 = time.monotonic()
        swarms.call_all("bare_publish", count=o.sales, payload=sale_payload)
        done_at = run.wait(
            "publish", lambda: _count(consumer.received, total, "received by the subscriber"), poll_s=0.05
        )
        out["publish_msgs_per_s"] = round(total / (done_at - t0), 1)
        consumer.stop()

        # one roster-sized message pushed to each client
        publisher = bare.Publisher(broker.host, broker.port)
        publisher.connected.wait(10)
        t0 = time.monotonic()
        for client_id in ids:
            publisher.publish(bare.down_topic(client_id), roster_payload, retain=True)
        run.wait("push", lambda: _count(swarms.stats()["received"], device_count, "clients received it"))
        clients = swarms.times()
        fan = [c["received"][0] - t0 for c in clients]
        out["fanout_s"] = round(max(fan), 3)
        out["fanout"] = distribution(fan)
        publisher.stop()

        stats = swarms.stats()
        out["memory"] = _memory(stats, broker, broker_idle, device_count)
        out["memory"]["broker_per_connection_kb"] = round((broker_connected - broker_idle) / device_count / 1024, 1)

        # broker restart: paho's default schedule (1 s, 2 s, 4 s ... no jitter)
        attempts_before = sum(c["attempts"] for c in clients)
        out["restart"] = _restart(run, broker, swarms, device_count)
        out["restart"].pop("killed_at")
        clients = swarms.times()
        out["restart"]["connect_attempts"] = sum(c["attempts"] for c in clients) - attempts_before
    finally:
        swarms.stop()
        broker.cleanup()
    out["idle_process_rss_mb"] = round(sum(idle["rss"]) / 2**20, 1)
    return out
