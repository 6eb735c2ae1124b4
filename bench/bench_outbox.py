"""Outbox drain vs raw paho publishing, against one local Mosquitto, in one run.

baseline: a bare paho client publishes N sale-sized messages at QoS 1 with the same
          in-flight window the agent uses, and waits for every PUBACK.
kassa:    an agent process starts with N sales already in its outbox; a cloud ingest
          worker applies them (SQLite, exactly-once ledger) and acks; the run ends when
          the outbox is empty, i.e. every row was acked by the cloud, not just PUBACKed.

The drain runs twice from the same backlog: as the agent ships (a backlog goes out up to
`mqtt.batch_max_messages` rows per `up/batch` publish) and with batching off (one row per
publish, like the raw client), each right after its own raw run.

    python -m bench.bench_outbox [--n 100000] [--window 64] [--batch 50] [--ack-window 1000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.cloud.outbox import Outbox
from agent.store import Store
from bench._stats import save
from broker import contract as kc
from broker.launcher import Mosquitto
from tests.support.agent_process import AgentProcess, write_agent_config
from tests.support.cloud import Cloud
from tests.support.sales import make_sale

DEVICE = "bench-0001"


def raw_publish_rate(broker: Mosquitto, payloads: list[bytes], window: int) -> float:
    done = threading.Event()
    acked = 0
    total = len(payloads)

    def on_publish(client, userdata, mid, reason_code, properties):
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


def drain(
    workdir: Path, broker: Mosquitto, filled: Path, n: int, window: int, batch: int, mqtt: dict, workers: int
) -> dict:
    """Start an agent on a copy of the filled outbox and a fresh cloud; time until it is empty."""
    config = write_agent_config(
        workdir / "agent",
        device_id=DEVICE,
        host=broker.host,
        port=broker.port,
        max_inflight=window,
        batch_max_messages=batch,
        **mqtt,
    )
    db = workdir / "agent" / "state" / "agent.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(filled, db)
    cloud = Cloud(workdir / "cloud", broker)
    names = [f"bench-{i}" for i in range(workers)]  # the same ids every run: a retired session would keep its share
    for name in names:
        cloud.start_worker_process(name)
    time.sleep(1.0)  # the worker subscribes before the agent starts sending
    agent = AgentProcess(config)
    broker_cpu_before = cpu_seconds(broker.process.pid) if broker.process else 0.0
    agent.start(wait=False)
    assert agent.process is not None
    peak_rss = rss_kib(agent.process.pid)
    # The clock starts at the first ack seen, not at process start: interpreter start-up and
    # migrations are not drain time (the raw client is timed from its first publish, too).
    initial = depth(db)
    started = None
    last_report = time.perf_counter()
    while (remaining := depth(db)) > 0:
        if started is None and remaining < initial:
            started, acked_before = time.perf_counter(), initial - remaining
        peak_rss = max(peak_rss, rss_kib(agent.process.pid))
        if time.perf_counter() - last_report > 5:
            print(f"  {initial - remaining}/{initial} acked", file=sys.stderr)
            last_report = time.perf_counter()
        time.sleep(0.01)
    if started is None:  # everything acked between two polls
        started, acked_before = time.perf_counter() - 0.01, 0
    elapsed = time.perf_counter() - started
    cpu = {
        "agent": cpu_seconds(agent.process.pid),
        "worker": sum(cpu_seconds(cloud.processes[name].pid) for name in names),
        "broker": (cpu_seconds(broker.process.pid) - broker_cpu_before) if broker.process else 0.0,
    }
    agent.stop()
    applied = cloud.sales(DEVICE)  # the agent's own state reports travel too; count the sales
    cloud.stop()
    return {
        "rate": (initial - acked_before) / elapsed,
        "elapsed": elapsed,
        "peak_rss_kib": peak_rss,
        "cpu": cpu,
        "applied": applied,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--batch", type=int, default=50, help="the agent's mqtt.batch_max_messages (its default: 50)")
    parser.add_argument(
        "--ack-window", type=int, default=None, help="the agent's mqtt.ack_window (default: the agent's default)"
    )
    parser.add_argument("--workers", type=int, default=1, help="cloud ingest worker processes sharing the subscription")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="kassa-bench-outbox-", dir="/var/tmp"))
    broker = Mosquitto(workdir / "mosquitto").start()
    results = {}
    try:
        filled = workdir / "filled.db"
        payloads = fill_outbox(filled, args.n)
        # Each drain is paired with a raw run just before it: the raw rate of this shared
        # machine drifts, and a ratio is only meaningful between neighbours in time.
        for name, batch in (("batched", args.batch), ("one per publish", 1)):
            print(f"raw paho publish of {args.n} messages...", file=sys.stderr)
            cpu_before = time.process_time()  # this process does nothing else meanwhile
            raw_rate = raw_publish_rate(broker, payloads, args.window)
            raw_cpu = time.process_time() - cpu_before
            print(f"draining the outbox ({name}) through the cloud worker...", file=sys.stderr)
            mqtt = {} if args.ack_window is None else {"ack_window": args.ack_window}
            result = drain(workdir / f"run-{batch}", broker, filled, args.n, args.window, batch, mqtt, args.workers)
            result["raw"], result["raw_cpu_us"] = raw_rate, raw_cpu / args.n * 1e6
            results[name] = result
    finally:
        broker.stop()

    print(
        f"outbox drain, {args.n} sale messages ({len(payloads[0])} B), in-flight window {args.window}, one Mosquitto, "
        f"{args.workers} cloud worker(s)"
    )
    for name, r in results.items():
        ratio = r["rate"] / r["raw"]
        print(
            f"  {name:<16} raw paho QoS 1 {r['raw']:>8.0f} msg/s | drain with cloud acks {r['rate']:>8.0f} msg/s"
            f"  ({ratio:.2f}x raw, target >= 0.6x)"
        )
        per_message = {k: v / args.n * 1e6 for k, v in r["cpu"].items()}
        print(
            f"  {'':<16} cloud applied {r['applied']}; agent peak RSS {r['peak_rss_kib'] / 1024:.1f} MiB; CPU s: "
            + ", ".join(f"{k} {v:.1f}" for k, v in r["cpu"].items())
            + f" (wall {r['elapsed']:.1f} s)"
        )
        print(
            f"  {'':<16} CPU per message: raw client {r['raw_cpu_us']:.0f} µs; "
            + ", ".join(f"{k} {v:.0f} µs" for k, v in per_message.items())
        )
    save(
        "outbox",
        {
            "n": args.n,
            "window": args.window,
            "workers": args.workers,
            "batch_max_messages": args.batch,
            "payload_bytes": len(payloads[0]),
            "runs": {
                name: {
                    "raw_msgs_per_s": round(r["raw"]),
                    "drain_msgs_per_s": round(r["rate"]),
                    "ratio": round(r["rate"] / r["raw"], 3),
                    "raw_cpu_us_per_msg": round(r["raw_cpu_us"]),
                    "cloud_applied": r["applied"],
                    "agent_peak_rss_mib": round(r["peak_rss_kib"] / 1024, 1),
                    "cpu_s": {k: round(v, 1) for k, v in r["cpu"].items()},
                }
                for name, r in results.items()
            },
        },
    )
    return 0 if all(r["applied"] == args.n for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
