"""The ingest worker's connection to the broker: the paho client and its network thread, the
persistent MQTT 5 session and subscriptions, reconnects with jittered backoff, and PUBACKs.

Each received PUBLISH is handed to the worker's `deliver(connection, mid, qos, topic,
payload)` on the network thread, where `connection` numbers the connection it came on: MQTT
packet ids are per connection, so a message is PUBACKed only on the connection that brought
it (`puback`); one received on an earlier connection comes back on the current one.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from broker import contract as kc
from broker.backoff import floored_jitter_delay
from cloud_api.ingest.client import IngestClient, TlsFiles
from cloud_api.mqtt_support import set_nodelay, set_reconnect_delay

log = logging.getLogger(__name__)

# A connection that stayed up this long resets the reconnect backoff to its minimum.
STABLE_CONNECTION_S = 10.0

# connection number, packet id, QoS, topic, payload (called on paho's network thread)
Deliver = Callable[[int, int, int, bytes, bytes], None]


class Delivered(Protocol):
    """A received message as `puback` needs to know it."""

    @property
    def connection(self) -> int: ...

    @property
    def mid(self) -> int: ...

    @property
    def qos(self) -> int: ...


class IngestConnection:
    """One worker's MQTT client, from `start` to `stop`; reconnects by itself in between."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        client_id: str,
        username: str | None,
        password: str | None,
        tls: TlsFiles | None,
        session_expiry_s: int,
        receive_maximum: int,
        keepalive_s: int,
        reconnect_min_s: float,
        reconnect_max_s: float,
        deliver: Deliver,
        on_connected: Callable[[], None],
        stopping: threading.Event,
    ) -> None:
        self.host = host
        self.port = port
        self.client_id = client_id
        self._username = username
        self._password = password
        self._tls = tls
        self._session_expiry_s = session_expiry_s
        self._receive_maximum = receive_maximum
        self._keepalive_s = keepalive_s
        self._reconnect_min_s = reconnect_min_s
        self._reconnect_max_s = reconnect_max_s
        self._deliver = deliver
        self._on_connected = on_connected
        # Set by the worker when it begins to stop: a disconnect from then on is expected.
        self._stopping = stopping
        self._subscribed = threading.Event()
        self._connection = 0
        self._connection_lock = threading.Lock()
        self._connected_at = 0.0
        self._reconnect_attempt = 0
        self._client: IngestClient | None = None

    def start(self) -> None:
        self._client = self._make_client()
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self._session_expiry_s
        properties.ReceiveMaximum = self._receive_maximum
        self._client.connect_async(
            self.host, self.port, keepalive=self._keepalive_s, clean_start=False, properties=properties
        )
        self._client.loop_start()

    def stop(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None

    def wait_subscribed(self, timeout_s: float) -> bool:
        return self._subscribed.wait(timeout_s)

    def publish(self, publications: Iterable[kc.Publication]) -> bool:
        """Queue each publication (QoS 1: paho resends until PUBACKed); False when stopped."""
        client = self._client
        if client is None:
            return False
        for publication in publications:
            client.publish(publication.topic, publication.payload, qos=publication.qos, retain=publication.retain)
        return True

    def puback(self, received: Iterable[Delivered]) -> None:
        """PUBACK what arrived on the current connection (see the module's docstring)."""
        client = self._client
        if client is None:
            return
        with self._connection_lock:
            connection = self._connection
            items = [item for item in received if item.connection == connection]
            client.ack_many(item.mid for item in items if item.qos == 1)
            for item in items:
                if item.qos > 1:
                    client.ack(item.mid, item.qos)

    def _make_client(self) -> IngestClient:
        client = IngestClient(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=MQTTProtocolVersion.MQTTv5, manual_ack=True
        )
        if self._username is not None:
            client.username_pw_set(self._username, self._password)
        if self._tls is not None:
            # mutual TLS: the broker maps the certificate's CN (kassa-cloud) to the ACL user
            client.tls_set(
                ca_certs=self._tls.ca_file,
                certfile=self._tls.cert_file,
                keyfile=self._tls.key_file,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        client.max_inflight_messages_set(100)
        set_reconnect_delay(client, self._reconnect_min_s)
        client.on_socket_open = set_nodelay
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_publish_received = self._on_publish
        return client

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            log.warning("broker refused the connection", extra={"reason": str(reason_code)})
            self._schedule_reconnect()
            return
        with self._connection_lock:
            self._connection += 1
        self._connected_at = time.monotonic()
        self._on_connected()
        # Subscribing again on every connect is harmless and makes the broker resend the
        # retained status of every device.
        client.subscribe(
            [
                (kc.CLOUD_INGEST_SUBSCRIPTION, SubscribeOptions(qos=kc.QOS)),
                (kc.CLOUD_STATUS_SUBSCRIPTION, SubscribeOptions(qos=kc.QOS)),
            ]
        )
        log.info(
            "connected to broker", extra={"client_id": self.client_id, "session_present": bool(flags.session_present)}
        )

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid: int, reason_codes: Any, properties: Any) -> None:
        failed = [str(code) for code in reason_codes if code.is_failure]
        if failed:
            log.error("broker refused a subscription", extra={"reasons": ",".join(failed)})
            return
        log.info("ingest subscribed", extra={"client_id": self.client_id})
        self._subscribed.set()

    def _on_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        log.debug("broker connection failed", extra={"host": self.host, "port": self.port})
        self._schedule_reconnect()

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        with self._connection_lock:  # waits for an ack round in progress on the old connection
            self._connection += 1
        if not self._stopping.is_set():
            log.warning("disconnected from broker", extra={"reason": str(reason_code)})
            if time.monotonic() - self._connected_at > STABLE_CONNECTION_S:
                self._reconnect_attempt = 0
            self._schedule_reconnect()

    def _schedule_reconnect(self) -> None:
        # paho waits its "minimum" delay before the next attempt; a fresh jittered value
        # each time turns its fixed doubling into jittered backoff.
        delay = floored_jitter_delay(self._reconnect_attempt, self._reconnect_min_s, self._reconnect_max_s)
        self._reconnect_attempt += 1
        if self._client is not None:
            set_reconnect_delay(self._client, delay)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        # paho's own path (packets IngestClient does not take a shortcut for): the raw topic
        # bytes, as the shortcut passes them.
        self._on_publish(message.mid, message.qos, bytes(message._topic), bytes(message.payload))

    def _on_publish(self, mid: int, qos: int, topic: bytes, payload: bytes) -> None:
        self._deliver(self._connection, mid, qos, topic, payload)
