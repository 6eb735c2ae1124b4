"""Cloud ingest throughput into PostgreSQL: a bare MQTT subscriber vs 1 and 2 ingest workers.

Every consumer drains the same backlog: N sales of 5 lines each, spread over D devices,
published at QoS 1 while the consumer's persistent session was offline, so the broker holds
them and the publisher's speed does not count. Then:

raw:        a bare paho subscriber (QoS 1, PUBACK on receipt, nothing else) receives them;
1 worker:   one `kassa-cloud worker` process applies them to PostgreSQL (exactly-once ledger:
            INSERT ... ON CONFLICT DO NOTHING, sequence tracking, down/acks) and PUBACKs;
2 workers:  two processes share the backlog through the shared subscription;
apply only: `apply_batch` in this process on already-received payloads (no MQTT), batches of
            `--batch`, to show what the database side costs.

The rate is counted from the first applied (received) message to the last, so process
start-up is not in it; so is the CPU, the consumer processes' own (the broker's and
PostgreSQL's are extra). Each consumer gets a fresh broker.

    python -m bench.bench_ingest [--n 20000] [--devices 20] [--database-url URL]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from bench._stats import save
from broker import contract as kc
from broker.launcher import Mosquitto
from cloud_api.db import make_engine
from cloud_api.ingest import IngestWorker, apply_batch
from cloud_api.ingest.fastparse import parse
from cloud_api.ingest.models import IngestedMessage
from cloud_api.reports.models import SaleRecord
from tests.support.cloud import Cloud

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
LINES = [  # (sku, name, qty_milli, unit_price, tax_rate_bp, discount)
    ("4006381333931", "Espresso", 2000, 250, 700, 0),
    ("PLU-4131", "Apples, per kg", 1250, 299, 700, 24),
    ("9780201633610", "Notebook A5", 1000, 1190, 1900, 0),
    ("4311501354155", "Mineral water 1.5 l", 6000, 49, 1900, 30),
    ("PLU-0815", "Croissant", 3000, 135, 700, 0),
]


def sale(receipt_no: int) -> kc.Sale:
    lines = [
        kc.SaleLine(
            sku=sku,
            name=name,
            qty_milli=qty,
            unit_price=price,
            tax_rate_bp=rate,
            discount=discount,
            total=kc.line_gross(price, qty) - discount,
        )
        for sku, name, qty, price, rate, discount in LINES
    ]
    bases: dict[int, int] = {}
    for line in lines:
        bases[line.tax_rate_bp] = bases.get(line.tax_rate_bp, 0) + line.total
    taxes = [
        kc.TaxLine(rate_bp=rate, base=base, tax=base * rate // (10_000 + rate)) for rate, base in sorted(bases.items())
    ]
    total = sum(line.total for line in lines)
    return kc.Sale(
        # sale ids time-ordered (UUIDv7), as devices make them
        sale_id=kc.uuid7(),
        receipt_no=receipt_no,
        cashier_id="C-0107",
        point_of_sale_id="POS-MAIN",
        till_session_id=uuid.UUID(int=receipt_no // 50),
        currency="EUR",
        tax_included=True,
        lines=lines,
        taxes=taxes,
        payments=[kc.Payment(method=kc.PaymentMethod.CARD, amount=total)],
        total=total,
        tax_total=sum(tax.tax for tax in taxes),
        change=0,
    )


def make_messages(n: int, devices: int) -> list[tuple[str, bytes]]:
    boot = uuid.uuid4()
    messages = []
    for i in range(n):
        device = f"bench-{i % devices:04d}"
        seq = i // devices + 1
        _, payload = kc.encode_up(sale(seq), device_id=device, seq=seq, boot_id=boot, clock_trusted=True)
        messages.append((kc.up_topic(device, kc.MessageType.SALE), payload))
    return messages


def publish_all(broker: Mosquitto, messages: list[tuple[str, bytes]]) -> None:
    done = threading.Event()
    acked = 0

    def on_publish(client, userdata, mid, reason_code, properties):
        nonlocal acked
        acked += 1
        if acked == len(messages):
            done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-ingest-pub", protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(256)
    client.max_queued_messages_set(0)
    client.on_publish = on_publish
    client.connect(broker.host, broker.port)
    client.loop_start()
    for topic, payload in messages:
        client.publish(topic, payload, qos=1)
    if not done.wait(600):
        raise TimeoutError("the broker did not take the backlog")
    client.loop_stop()
    client.disconnect()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- raw subscriber
def raw_receive(broker: Mosquitto, messages: list[tuple[str, bytes]]) -> dict:
    """A bare subscriber with a persistent session: subscribe, go away, backlog, come back."""
    got = 0
    first = last = 0.0
    done = threading.Event()
    subscribed = threading.Event()

    def on_message(client, userdata, message):
        nonlocal got, first, last
        got += 1
        last = time.perf_counter()
        if got == 1:
            first = last
        if got == len(messages):
            done.set()

    def connect() -> mqtt.Client:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-raw-sub", protocol=mqtt.MQTTv5)
        client.on_message = on_message
        client.on_subscribe = lambda *args: subscribed.set()
        client.on_socket_open = lambda c, u, sock: sock.setsockopt(6, 1, 1)  # TCP_NODELAY
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 3600
        properties.ReceiveMaximum = 2000  # as the worker
        client.connect(broker.host, broker.port, clean_start=False, properties=properties)
        return client

    client = connect()
    client.loop_start()
    client.subscribe("$share/raw/" + kc.CLOUD_INGEST_SUBSCRIPTION.split("/", 2)[2], qos=1)
    subscribed.wait(10)
    client.disconnect()
    client.loop_stop()
    publish_all(broker, messages)
    cpu0 = time.process_time()
    client = connect()
    client.loop_start()
    if not done.wait(600):
        raise TimeoutError(f"raw subscriber got {got} of {len(messages)}")
    cpu = time.process_time() - cpu0
    client.disconnect()
    client.loop_stop()
    return {"rate": (len(messages) - 1) / (last - first), "cpu_s": cpu}


# --------------------------------------------------------------------------- workers
def private_schema(base_url: str) -> tuple[str, str]:
    schema = f"bench_ingest_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    url = make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
    return schema, url.render_as_string(hide_password=False)


def drop_schema(base_url: str, schema: str) -> None:
    admin = create_engine(base_url)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def workers_ingest(
    workdir: Path, broker: Mosquitto, base_url: str, messages: list[tuple[str, bytes]], workers: int
) -> dict:
    schema, url = private_schema(base_url)
    try:
        cloud = Cloud(workdir / f"cloud-{workers}", broker, url)
        ids = [f"bench-{workers}-{i}" for i in range(workers)]
        # Sessions and subscriptions first, with in-process workers, then offline for the backlog.
        for worker_id in ids:
            worker = IngestWorker(cloud.engine, broker.host, broker.port, worker_id).start()
            if not worker.wait_subscribed(10):
                raise TimeoutError("worker did not subscribe")
            worker.stop()
        publish_all(broker, messages)
        processes = [cloud.start_worker_process(worker_id) for worker_id in ids]
        n = len(messages)
        first = last = 0.0
        at_first = 0
        cpu_at_first = 0.0
        deadline = time.monotonic() + 600
        while True:
            with cloud.engine.connect() as conn:
                count = conn.execute(select(func.count()).select_from(IngestedMessage)).scalar_one()
            now = time.perf_counter()
            if count and not first:
                first, at_first = now, count
                cpu_at_first = sum(cpu_seconds(p.pid) for p in processes)
            if count >= n:
                last = now
                break
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                raise RuntimeError(f"workers applied {count} of {n}")
            time.sleep(0.02)
        cpu = sum(cpu_seconds(p.pid) for p in processes) - cpu_at_first
        with cloud.engine.connect() as conn:
            sales = conn.execute(select(func.count()).select_from(SaleRecord)).scalar_one()
        cloud.stop()
        if sales != n:
            raise RuntimeError(f"{sales} sales stored for {n} messages")
        return {"rate": (n - at_first) / (last - first), "cpu_s": cpu * n / (n - at_first), "sales": sales}
    finally:
        drop_schema(base_url, schema)


def apply_only(base_url: str, messages: list[tuple[str, bytes]], batch: int) -> dict:
    schema, url = private_schema(base_url)
    engine = make_engine(url)
    try:
        from cloud_api.schema import upgrade as upgrade_schema

        upgrade_schema(engine)
        cpu0 = time.process_time()
        started = time.perf_counter()
        for start in range(0, len(messages), batch):
            items = [parse(topic, payload) for topic, payload in messages[start : start + batch]]
            with Session(engine) as session, session.begin():
                plan = apply_batch(session, items)
            plan.envelopes()  # the acks are built too (publishing is the worker's)
        elapsed = time.perf_counter() - started
        return {"rate": len(messages) / elapsed, "cpu_s": time.process_time() - cpu0}
    finally:
        engine.dispose()
        drop_schema(base_url, schema)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--batch", type=int, default=250, help="batch size of the apply-only row")
    parser.add_argument("--database-url", default=os.environ.get("KASSA_TEST_POSTGRES_URL", DEFAULT_URL))
    args = parser.parse_args(argv)
    messages = make_messages(args.n, args.devices)
    workdir = Path(tempfile.mkdtemp(prefix="kassa-bench-ingest-", dir="/var/tmp"))
    results: dict[str, dict] = {}

    def fresh_broker(name: str) -> Mosquitto:  # no session of an earlier run gets a share
        return Mosquitto(workdir / name).start()

    print(f"raw subscriber, {args.n} messages...", file=sys.stderr)
    broker = fresh_broker("mosquitto-raw")
    try:
        results["raw"] = raw_receive(broker, messages)
    finally:
        broker.stop()
    for workers in (1, 2):
        print(f"{workers} worker(s)...", file=sys.stderr)
        broker = fresh_broker(f"mosquitto-{workers}")
        try:
            results[f"workers_{workers}"] = workers_ingest(workdir, broker, args.database_url, messages, workers)
        finally:
            broker.stop()
    print("apply_batch only...", file=sys.stderr)
    results["apply_only"] = apply_only(args.database_url, messages, args.batch)

    raw = results["raw"]["rate"]
    print(
        f"ingest into PostgreSQL, {args.n} sales of {len(LINES)} lines ({len(messages[0][1])} B), "
        f"{args.devices} devices, dedupe on (exactly-once ledger), one Mosquitto"
    )
    print(f"  {'consumer':<26}{'msg/s':>10}{'x raw':>8}{'CPU s':>8}{'us CPU/msg':>12}")
    labels = {
        "raw": "raw subscriber (QoS 1)",
        "workers_1": "1 worker",
        "workers_2": "2 workers",
        "apply_only": f"apply_batch only ({args.batch})",
    }
    for key, label in labels.items():
        row = results[key]
        print(
            f"  {label:<26}{row['rate']:>10.0f}{row['rate'] / raw:>8.2f}{row['cpu_s']:>8.1f}"
            f"{row['cpu_s'] / args.n * 1e6:>12.0f}"
        )
    save(
        "ingest",
        {
            "n": args.n,
            "devices": args.devices,
            "lines_per_sale": len(LINES),
            "payload_bytes": len(messages[0][1]),
            "apply_batch_size": args.batch,
            "database": make_url(args.database_url).get_backend_name(),
            **{
                key: {
                    "msgs_per_s": round(row["rate"]),
                    "cpu_s": round(row["cpu_s"], 2),
                    "us_cpu_per_msg": round(row["cpu_s"] / args.n * 1e6),
                }
                for key, row in results.items()
            },
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
