"""Shared by the ingest tests (tests/cloud/test_ingest_*.py): a raw paho client playing a
device, and a wait. Their database and MQTT fixtures are in conftest.py."""

from __future__ import annotations

import collections
import socket
import threading
import time
import uuid
from collections.abc import Callable

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from broker import contract as kc
from broker.launcher import Mosquitto

BOOT = uuid.UUID("6a1f0000-0000-4000-8000-000000000001")
TIMEOUT_S = 20.0


def wait_for(predicate: Callable[[], bool], timeout_s: float = TIMEOUT_S, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what or predicate}")
        time.sleep(0.01)


class Device:
    """A terminal stand-in: publishes envelopes at QoS 1 and records every down/ack."""

    def __init__(self, broker: Mosquitto, device_id: str) -> None:
        self.device_id = device_id
        self.acked: collections.Counter[uuid.UUID] = collections.Counter()
        self.rejected: dict[uuid.UUID, str] = {}
        self.high_waters: list[int | None] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=device_id, protocol=MQTTProtocolVersion.MQTTv5)
        self.client.max_inflight_messages_set(200)
        self.client.on_socket_open = lambda c, u, sock: sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        will = kc.will_publication(device_id, BOOT, clock_trusted=True)
        self.client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(kc.ack_topic(device_id), qos=1)
        self.client.loop_start()
        assert self._subscribed.wait(5)

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        parsed = kc.parse_message(message.topic, message.payload)
        assert isinstance(parsed, kc.Parsed), parsed
        with self._lock:
            self.acked.update(parsed.body.acked_ids)
            self.rejected.update({r.id: r.reason for r in parsed.body.rejected})
            self.high_waters.append(parsed.body.high_water)

    def send(self, envelope: kc.Envelope) -> None:
        self.send_raw(envelope.topic, kc.encode(envelope))

    def send_raw(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        assert info.rc == paho.MQTT_ERR_SUCCESS

    def settled(self, ids: list[uuid.UUID], times: int = 1) -> bool:
        with self._lock:
            return all(self.acked[i] + (i in self.rejected) >= times for i in ids)

    def vanish(self) -> None:
        """Drop off like a crashed terminal: the broker publishes the will."""
        self.client.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, identifier=4))
        self.client.loop_stop()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
