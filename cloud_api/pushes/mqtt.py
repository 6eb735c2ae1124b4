"""The publisher's own MQTT connection (paho-mqtt 2, MQTT 5).

Only publishes: no subscriptions, a clean start (nothing to keep at the broker). TCP_NODELAY
is set (small QoS 1 packets otherwise wait for delayed ACKs), reconnects use full-jitter
backoff, and at most `max_inflight` publishes wait for their PUBACK at a time (paho queues
the rest).
PUBACKs are handed over through `take_acks()`, never by calling back into the publisher
(paho calls on_publish while holding its own lock).
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from broker import contract as kc
from broker.backoff import floored_jitter_delay
from cloud_api.mqtt_support import set_nodelay, set_reconnect_delay

log = logging.getLogger(__name__)

# A connection that stayed up this long resets the reconnect backoff to its minimum.
STABLE_CONNECTION_S = 10.0


@dataclass(frozen=True)
class BrokerOptions:
    """Where and how the publisher connects. Setting `ca_file` turns TLS on; `cert_file` and
    `key_file` add a client certificate (the production broker's cloud listener)."""

    host: str
    port: int
    client_id: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    keepalive_s: int = 30
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    # Unacknowledged QoS 1 publishes at a time; at most the broker's Receive Maximum
    # (Mosquitto's max_inflight_messages, 20 by default and in broker/production).
    max_inflight: int = 20


@dataclass(frozen=True, slots=True)
class PubAck:
    mid: int
    accepted: bool
    reason: str


class PushClient:
    """One paho client. `publish` returns the packet id to wait for, or None if paho refused
    the message; `take_acks` returns the PUBACKs received since the last call."""

    def __init__(self, options: BrokerOptions, on_ack: Callable[[], None] = lambda: None) -> None:
        self.options = options
        self._on_ack = on_ack
        self._acks: deque[PubAck] = deque()
        self._connected = threading.Event()
        self._attempt = 0
        self._connected_at = 0.0
        self.last_error: str | None = None
        self._client = self._make_client()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def connected_since(self) -> float:
        """time.monotonic() of the last successful connect (0 before the first)."""
        return self._connected_at

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    def start(self) -> PushClient:
        self._client.connect_async(
            self.options.host, self.options.port, keepalive=self.options.keepalive_s, clean_start=True
        )
        self._client.loop_start()
        return self

    def stop(self) -> None:
        """Disconnect. Messages still waiting for a PUBACK are dropped with the client: the
        database still shows them unpublished, so the next publisher sends them again."""
        self._connected.clear()
        self._client.disconnect()
        self._client.loop_stop()

    def publish(self, publication: kc.Publication) -> int | None:
        info = self._client.publish(
            publication.topic, publication.payload, qos=publication.qos, retain=publication.retain
        )
        # NO_CONN: the connection dropped just now; paho keeps the message and sends it
        # after reconnecting, so its PUBACK is still to come.
        if info.rc in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
            return info.mid
        log.warning("publish refused by the MQTT client", extra={"rc": str(info.rc), "topic": publication.topic})
        return None

    def take_acks(self) -> list[PubAck]:
        acks = []
        while self._acks:
            acks.append(self._acks.popleft())
        return acks

    # ------------------------------------------------------------------ paho callbacks
    def _make_client(self) -> paho.Client:
        o = self.options
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=o.client_id, protocol=MQTTProtocolVersion.MQTTv5)
        if o.username is not None:
            client.username_pw_set(o.username, o.password)
        if o.ca_file is not None:
            client.tls_set(
                ca_certs=o.ca_file, certfile=o.cert_file, keyfile=o.key_file, tls_version=ssl.PROTOCOL_TLS_CLIENT
            )
        client.max_inflight_messages_set(o.max_inflight)
        set_reconnect_delay(client, o.reconnect_min_s)
        client.on_socket_open = set_nodelay
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            self.last_error = f"broker refused the connection: {reason_code}"
            log.warning("broker refused the publisher's connection", extra={"reason": str(reason_code)})
            self._schedule_reconnect()
            return
        # paho does not honour the broker's Receive Maximum (and cannot change its window on a
        # live connection): the configured window must not exceed it.
        receive_maximum = getattr(properties, "ReceiveMaximum", None)
        if receive_maximum and int(receive_maximum) < self.options.max_inflight:
            log.warning(
                "the broker accepts fewer unacknowledged messages than the publisher sends; lower its max_inflight",
                extra={"receive_maximum": int(receive_maximum), "max_inflight": self.options.max_inflight},
            )
        self._connected_at = time.monotonic()
        self.last_error = None
        self._connected.set()
        log.info(
            "publisher connected to broker",
            extra={"client_id": self.options.client_id, "host": self.options.host, "port": self.options.port},
        )
        self._on_ack()  # wake the publisher: there may be work that waited for the broker

    def _on_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        self.last_error = f"cannot connect to {self.options.host}:{self.options.port}"
        self._schedule_reconnect()

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        if was_connected:
            self.last_error = f"disconnected: {reason_code}"
            log.warning("publisher disconnected from broker", extra={"reason": str(reason_code)})
            if time.monotonic() - self._connected_at > STABLE_CONNECTION_S:
                self._attempt = 0
            self._schedule_reconnect()

    def _schedule_reconnect(self) -> None:
        # paho waits its "minimum" delay before the next attempt; a fresh jittered value
        # each time turns its fixed doubling into jittered backoff.
        delay = floored_jitter_delay(self._attempt, self.options.reconnect_min_s, self.options.reconnect_max_s)
        self._attempt += 1
        set_reconnect_delay(self._client, delay)

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        failed = bool(getattr(reason_code, "is_failure", False))
        self._acks.append(PubAck(mid, not failed, str(reason_code)))
        self._on_ack()
