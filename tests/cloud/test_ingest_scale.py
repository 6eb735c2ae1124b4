"""Ingest at scale: 10,000 sales from 20 devices through a real Mosquitto, applied by two
`kassa-cloud worker` processes sharing `$share/ingest/...`, on SQLite and on PostgreSQL.

Every sale must be stored exactly once with its lines and payments, every message acked to
its device, both workers must have taken part, and no sequence gap may stay open (with two
workers a device's messages arrive out of order, so gaps open and must close again).
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from sqlalchemy import func, select

from broker import contract as kc
from broker.contract.topics import TOPIC_PREFIX
from broker.launcher import Mosquitto
from cloud_api.ingest.models import DeviceStream, IngestedMessage, SequenceGap
from cloud_api.reports.models import SaleLine, SalePayment, SaleRecord
from tests.cloud.api_support import BACKENDS, private_database
from tests.support.cloud import Cloud
from tests.support.sales import make_sale

DEVICES = 20
SALES_PER_DEVICE = 500
WORKERS = ("scale-a", "scale-b")
DEADLINE_S = 60.0


class AckListener:
    """Plays the 20 devices' receiving side: every down/ack on kassa/v1/dev/+/down/ack."""

    def __init__(self, broker: Mosquitto) -> None:
        self.acked: dict[uuid.UUID, str] = {}  # message id -> device it was acked to
        self.rejected: dict[uuid.UUID, str] = {}
        self.lock = threading.Lock()
        subscribed = threading.Event()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id="scale-acks", protocol=MQTTProtocolVersion.MQTTv5
        )
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(f"{TOPIC_PREFIX}/+/down/ack", qos=1)
        self.client.loop_start()
        assert subscribed.wait(10)

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        parsed = kc.parse_message(message.topic, message.payload)
        assert isinstance(parsed, kc.Parsed), parsed
        with self.lock:
            for message_id in parsed.body.acked_ids:
                self.acked[message_id] = parsed.envelope.device_id
            for rejection in parsed.body.rejected:
                self.rejected[rejection.id] = rejection.reason

    def count(self) -> int:
        with self.lock:
            return len(self.acked) + len(self.rejected)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def device_publishers(broker: Mosquitto) -> list[paho.Client]:
    clients = []
    for n in range(DEVICES):
        client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"scale-till-{n:02d}", protocol=MQTTProtocolVersion.MQTTv5
        )
        client.max_inflight_messages_set(100)
        client.connect(broker.host, broker.port)
        client.loop_start()
        clients.append(client)
    return clients


def wait_for_line(log: Path, text: str, timeout_s: float = 30) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if log.exists():
            for line in log.read_text(errors="replace").splitlines():
                if text in line:
                    return line
        time.sleep(0.05)
    raise AssertionError(
        f"{log.name}: no {text!r} within {timeout_s} s:\n"
        + (log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)")
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_workers_ingest_10000_sales_from_20_devices_exactly_once(
    backend: str, tmp_path: Path, mosquitto: Mosquitto
) -> None:
    with private_database(backend, tmp_path) as url:
        cloud = Cloud(tmp_path / "cloud", mosquitto, url)
        listener = AckListener(mosquitto)
        publishers: list[paho.Client] = []
        try:
            for worker_id in WORKERS:
                cloud.start_worker_process(worker_id)
            for worker_id in WORKERS:  # published from now on, it reaches the group
                wait_for_line(cloud.workdir / f"worker-{worker_id}.log", "ingest subscribed")

            boot_id = uuid.uuid4()
            devices = [f"scale-till-{n:02d}" for n in range(DEVICES)]
            sent: dict[uuid.UUID, tuple[str, kc.Sale]] = {}
            publishers = device_publishers(mosquitto)
            started = time.monotonic()
            for seq in range(1, SALES_PER_DEVICE + 1):  # interleaved, like 20 busy tills
                for device_id, client in zip(devices, publishers, strict=True):
                    sale = make_sale(seq)
                    message_id, payload = kc.encode_up(
                        sale, device_id=device_id, seq=seq, boot_id=boot_id, clock_trusted=True
                    )
                    sent[message_id] = (device_id, sale)
                    assert (
                        client.publish(kc.up_topic(device_id, kc.MessageType.SALE), payload, qos=1).rc
                        == paho.MQTT_ERR_SUCCESS
                    )
            total = DEVICES * SALES_PER_DEVICE
            while listener.count() < total and time.monotonic() - started < DEADLINE_S:
                time.sleep(0.1)
            elapsed = time.monotonic() - started
            assert listener.count() >= total, f"{listener.count()} of {total} settled in {elapsed:.0f} s"

            # every message acked, to its own device, and none refused
            assert listener.rejected == {}
            assert listener.acked == {message_id: device for message_id, (device, _) in sent.items()}
            check_database(cloud, sent)
        finally:
            for client in publishers:  # disconnecting first wakes the network thread
                client.disconnect()
            for client in publishers:
                client.loop_stop()
            listener.close()
            for process in cloud.processes.values():  # both stop at once, not one by one
                process.terminate()
            cloud.stop()  # each worker logs its counters as it stops (SIGTERM)
        stopped = [
            wait_for_line(cloud.workdir / f"worker-{worker_id}.log", "ingest worker stopped") for worker_id in WORKERS
        ]
        applied = [int(re.search(r" applied=(\d+) ", line).group(1)) for line in stopped]
        assert sum(applied) == total and min(applied) > 0, applied  # both took part
        print(f"\n{backend}: {total} sales settled in {elapsed:.1f} s by two workers {applied}")


def check_database(cloud: Cloud, sent: dict[uuid.UUID, tuple[str, kc.Sale]]) -> None:
    total = len(sent)
    sales = {sale.sale_id: sale for _, sale in sent.values()}
    with cloud.engine.connect() as conn:
        ledger = conn.execute(select(IngestedMessage.outcome, func.count()).group_by(IngestedMessage.outcome)).all()
        assert [tuple(row) for row in ledger] == [("applied", total)]
        stored = conn.execute(
            select(SaleRecord.sale_id, SaleRecord.device_id, SaleRecord.receipt_number, SaleRecord.total_minor)
        ).all()
        assert len(stored) == total
        assert {row.sale_id for row in stored} == set(sales)
        assert {(row.device_id, row.receipt_number) for row in stored} == {
            (device, sale.receipt_no) for device, sale in sent.values()
        }
        assert all(row.total_minor == sales[row.sale_id].total for row in stored)

        # lines and payments: each sale has all of its own, and they add up
        lines = dict(conn.execute(select(SaleLine.sale_id, func.count()).group_by(SaleLine.sale_id)).all())
        payments = dict(
            conn.execute(
                select(SalePayment.sale_id, func.sum(SalePayment.amount_minor)).group_by(SalePayment.sale_id)
            ).all()
        )
        assert lines == {sale_id: len(sale.lines) for sale_id, sale in sales.items()}
        assert payments == {sale_id: sum(p.amount for p in sale.payments) for sale_id, sale in sales.items()}
        line_totals = conn.execute(select(func.sum(SaleLine.total_minor))).scalar_one()
        assert line_totals == sum(sale.total for sale in sales.values())  # tax included

        # sequences: complete per device, no gap left open
        streams = conn.execute(select(DeviceStream.high_water, DeviceStream.max_seq)).all()
        assert [tuple(row) for row in streams] == [(SALES_PER_DEVICE, SALES_PER_DEVICE)] * DEVICES
        open_gaps = conn.execute(
            select(func.count()).select_from(SequenceGap).where(SequenceGap.closed_at.is_(None))
        ).scalar_one()
        assert open_gaps == 0
