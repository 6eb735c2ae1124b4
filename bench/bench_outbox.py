"""Outbox drain vs raw paho publishing, against one local Mosquitto, in one run.

baseline: a bare paho client publishes N sale-sized messages at QoS 1 with the same
          in-flight window the agent uses, and waits for every PUBACK.
kassa:    an agent process starts with N sales already in its outbox; a cloud ingest
          worker applies them (SQLite, exactly-once ledger) and acks; the run ends when
          the outbox is empty, i.e. every row was acked by the cloud, not just PUBACKed.

    python bench/bench_outbox.py [--n 100000] [--window 64]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from agent.cloud.outbox import Outbox  # noqa: E402
from agent.store import Store  # noqa: E402
from bench._stats import save  # noqa: E402
from broker import contract as kc  # noqa: E402
from broker.launcher import Mosquitto  # noqa: E402
from tests.support.agent_process import AgentProcess, write_agent_config  # noqa: E402
from tests.support.cloud import Cloud  # noqa: E402
from tests.support.sales import make_sale  # noqa: E402

DEVICE = "bench-0001"


def raw_publish_rate(broker: Mosquitto, payloads: list[bytes], window: int) -> float:
    done = threading.Event()
    acked = 0
    total = len(payloads)

    def on_publish(client, userdata, mid, reason_code, properties):  # noqa: ANN001
        nonlocal acked
        acked += 1
        if acked == total:
            done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-raw", protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(window)
    client.max_queued_messages_set(0)
    client.on_publish = on_publish
    client.on_socket_open = lambda c, u, sock: sock.setsockopt(6, 1, 1)  # TCP_NODELAY, as the agent
    client.connect(broker.host, broker.port)
    client.loop_start()
    topic = kc.up_topic(DEVICE, kc.MessageType.SALE)
    started = time.perf_counter()
    for published, payload in enumerate(payloads):
        # paho's message ids are 16 bits: never hold more than ~50k unconfirmed publishes
        while published - acked > 50_000:
            time.sleep(0.001)
        client.publish(topic, payload, qos=1)
    done.wait(600)
    elapsed = time.perf_counter() - started
    client.loop_stop()
    client.disconnect()
    return total / elapsed


def fill_outbox(db: Path, n: int) -> list[bytes]:
    store = Store.open(db)
    outbox = Outbox(store, DEVICE, kc.uuid7(), lambda: True)
    payloads = []
    for start in range(1, n + 1, 1000):
        with store.transaction() as conn:
            for receipt in range(start, min(start + 1000, n + 1)):
                payloads.append(outbox.enqueue(conn, make_sale(receipt)).payload)
        if start % 20000 == 1:
            print(f"  filling outbox {start - 1}/{n}", file=sys.stderr)
    store.close()
    return payloads


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def depth(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--window", type=int, default=64)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="kassa-bench-outbox-", dir="/var/tmp"))
    broker = Mosquitto(workdir / "mosquitto").start()
    try:
        config = write_agent_config(workdir / "agent", device_id=DEVICE, host=broker.host, port=broker.port, max_inflight=args.window)
        db = workdir / "agent" / "state" / "agent.db"
        payloads = fill_outbox(db, args.n)

        print(f"raw paho publish of {args.n} messages...", file=sys.stderr)
        raw_rate = raw_publish_rate(broker, payloads, args.window)

        cloud = Cloud(workdir / "cloud", broker)
        cloud.start_worker_process("bench")
        time.sleep(1.0)  # the worker subscribes before the agent starts sending
        print("draining the outbox through the cloud worker...", file=sys.stderr)
        agent = AgentProcess(config)
        started = time.perf_counter()
        agent.start()
        assert agent.process is not None
        peak_rss = rss_kib(agent.process.pid)
        last_report = started
        while (remaining := depth(db)) > 0:
            peak_rss = max(peak_rss, rss_kib(agent.process.pid))
            if time.perf_counter() - last_report > 5:
                print(f"  {args.n - remaining}/{args.n} acked", file=sys.stderr)
                last_report = time.perf_counter()
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        drain_rate = args.n / elapsed
        cpu = {
            "agent": cpu_seconds(agent.process.pid),
            "worker": cpu_seconds(cloud.processes["bench"].pid),
            "broker": cpu_seconds(broker.process.pid) if broker.process else 0.0,
        }
        agent.stop()
        applied = cloud.sales(DEVICE)  # the agent's own state reports travel too; count the sales
        cloud.stop()
    finally:
        broker.stop()

    ratio = drain_rate / raw_rate
    print(f"outbox drain, {args.n} sale messages ({len(payloads[0])} B), window {args.window}, one Mosquitto")
    print(f"  raw paho QoS 1 publish      {raw_rate:>10.0f} msg/s")
    print(f"  outbox drain with cloud ack {drain_rate:>10.0f} msg/s  ({ratio:.2f}x raw, target >= 0.6x)")
    print(f"  cloud applied {applied}; agent peak RSS {peak_rss / 1024:.1f} MiB")
    print("  CPU seconds during the drain: " + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items()) + f" (wall {elapsed:.1f} s)")
    save("outbox", {"n": args.n, "window": args.window, "payload_bytes": len(payloads[0]), "raw_msgs_per_s": round(raw_rate), "drain_msgs_per_s": round(drain_rate), "ratio": round(ratio, 3), "cloud_applied": applied, "agent_peak_rss_mib": round(peak_rss / 1024, 1), "cpu_s": {k: round(v, 1) for k, v in cpu.items()}})
    return 0 if applied == args.n else 1


if __name__ == "__main__":
    sys.exit(main())
