"""The baseline client: a bare paho client with none of the agent's code.

Same process layout, same event loop driver and non-blocking connect as the simulated
terminals, MQTT 5 and TCP_NODELAY, but no store, no outbox, no will, no status message: it
connects with a clean start, subscribes to its own ``bench/bare/<id>/down/#`` and does what
a phase asks (publish sale-sized messages, wait for one pushed message). Its reconnect
schedule is paho's own default (``reconnect_delay_set(1, 120)``: 1 s, 2 s, 4 s, ... up to
120 s, no jitter, reset by a CONNACK), i.e. what a client that leaves reconnects to paho gets.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from bench.fleet.mqtt_loop import PahoOnLoop

PAHO_MIN_DELAY_S = 1.0
PAHO_MAX_DELAY_S = 120.0
BARE_PREFIX = "bench/bare"


def down_topic(client_id: str) -> str:
    return f"{BARE_PREFIX}/{client_id}/down/state"


def up_topic(client_id: str) -> str:
    return f"{BARE_PREFIX}/{client_id}/up/sale"


class BareClient:
    def __init__(self, client_id: str, host: str, port: int, driver: PahoOnLoop) -> None:
        self.client_id = client_id
        self.host = host
        self.port = port
        self.driver = driver
        self.connect_times: list[float] = []
        self.received: list[float] = []  # time.monotonic() of each message on its down topic
        self.acked = 0
        self.attempts = 0
        self.attempt_times: list[float] = []
        self.stopping = False
        self._delay: float | None = None
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5)
        self.client.max_inflight_messages_set(64)
        self.client.on_socket_open = _nodelay
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self.connected = False
        driver.attach(self.client, self._closed)

    def start(self) -> None:
        self._connect()

    def _connect(self) -> None:
        if self.stopping:
            return
        self.attempts += 1
        self.attempt_times.append(time.monotonic())
        try:
            self.client.connect(self.host, self.port, keepalive=30, clean_start=True)
        except OSError:
            self._closed()

    def _closed(self) -> None:
        self.connected = False
        if self.stopping:
            return
        # paho's _reconnect_wait: the minimum first, doubled on every failure, reset on CONNACK
        self._delay = PAHO_MIN_DELAY_S if self._delay is None else min(self._delay * 2, PAHO_MAX_DELAY_S)
        self.driver.loop.call_later(self._delay, self._connect)

    def stop(self) -> None:
        self.stopping = True
        if self.connected:
            self.client.disconnect()

    def publish(self, count: int, payload: bytes) -> None:
        topic = up_topic(self.client_id)
        for _ in range(count):
            self.client.publish(topic, payload, qos=1)

    # ------------------------------------------------------------------ callbacks
    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            return
        self.connected = True
        self._delay = None
        self.connect_times.append(time.monotonic())
        client.subscribe(f"{BARE_PREFIX}/{self.client_id}/down/#", qos=1)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        self.received.append(time.monotonic())

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        self.acked += 1


def _nodelay(client: paho.Client, userdata: Any, sock: Any) -> None:
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Consumer:
    """One bare subscriber on its own paho thread (the baseline's stand-in for the cloud's
    ingest): counts what arrives on ``topic_filter``."""

    def __init__(self, host: str, port: int, topic_filter: str, client_id: str = "bare-consumer") -> None:
        self.received = 0
        self.subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5)
        self.client.on_socket_open = _nodelay
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic_filter, qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        self.received += 1

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Publisher:
    """One bare publisher on its own paho thread (the baseline's stand-in for the cloud's push
    publisher): QoS 1, the same in-flight window as the push publisher."""

    def __init__(self, host: str, port: int, max_inflight: int = 20, client_id: str = "bare-publisher") -> None:
        self.acked = 0
        self.connected = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5)
        self.client.max_inflight_messages_set(max_inflight)
        self.client.on_socket_open = _nodelay
        self.client.on_connect = lambda c, u, f, rc, p: self.connected.set()
        self.client.on_publish = self._on_publish
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        self.acked += 1

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
