"""paho-mqtt, set up the way a terminal needs it.

MQTT 5 with a persistent session (clean start off, session expiry), a retained
``online`` status on connect and ``offline`` as the will, TCP_NODELAY (paho does
not set it, and small QoS 1 messages then stall ~40 ms on delayed ACKs), a
bounded in-flight window, and reconnects with capped exponential backoff and
full jitter so a fleet does not reconnect in lock-step after a broker restart.

paho's network loop runs in one thread owned by this class; its callbacks are
forwarded as plain calls, which the cloud link hands to the asyncio loop.
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.config import MqttConfig
from agent.loop_failures import LoopFailures
from broker import contract as kc
from broker.backoff import full_jitter_delay

log = logging.getLogger(__name__)

# A connection that stayed up this long resets the backoff to its minimum.
STABLE_CONNECTION_S = 10.0


@dataclass
class LinkCallbacks:
    on_connected: Callable[[bool], None]  # session_present
    on_disconnected: Callable[[str], None]  # reason
    on_message: Callable[[str, bytes], None]  # topic, payload


class MqttLink:
    def __init__(
        self,
        config: MqttConfig,
        device_id: str,
        boot_id: uuid.UUID,
        callbacks: LinkCallbacks,
        clock_trusted: Callable[[], bool],
    ) -> None:
        self.config = config
        self.device_id = device_id
        self.boot_id = boot_id
        self.callbacks = callbacks
        self.clock_trusted = clock_trusted
        self.connected = False
        self.subscribed = False  # the broker confirmed our down/# subscription on this connection
        self.connects = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rng = random.Random()
        self._refreshing: dict[int, str] = {}  # SUBSCRIBE mid -> topic asked again by refresh_retained
        self._tls_context: ssl.SSLContext | None = None
        self._failures = LoopFailures(log, "broker connection")
        self.client = self._make_client()

    def _make_client(self) -> paho.Client:
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.device_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            reconnect_on_failure=False,  # we reconnect ourselves, with jitter
        )
        client.username_pw_set(
            self.config.username or self.device_id,
            self.config.password.get_secret_value() if self.config.password else None,
        )
        if self.config.tls:
            # Our own context rather than tls_set's: reload_certificate() swaps the certificate
            # in it for the next handshake (paho configures TLS only once per client).
            self._tls_context = ssl.create_default_context(
                cafile=str(self.config.ca_file) if self.config.ca_file else None
            )
            if self.config.cert_file:
                self._load_client_certificate()
            client.tls_set_context(self._tls_context)
        client.max_inflight_messages_set(self.config.max_inflight)
        # paho holds what exceeds its in-flight window until PUBACKs free room; the outbox's
        # ack window bounds that. Nothing is queued while offline: publish() refuses, and
        # the outbox (which survives restarts) is the queue.
        client.max_queued_messages_set(self.config.ack_window + 16)
        client.on_socket_open = self._on_socket_open
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def _load_client_certificate(self) -> None:
        assert self._tls_context is not None and self.config.cert_file is not None
        self._tls_context.load_cert_chain(
            str(self.config.cert_file), str(self.config.key_file) if self.config.key_file else None
        )

    # ----------------------------------------------------------------- control
    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="mqtt-network", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Say ``offline`` ourselves (a clean disconnect does not fire the will), then close."""
        self._stop.set()
        if self.connected:
            try:
                info = self._publish_status(kc.Presence.OFFLINE)
                info.wait_for_publish(min(2.0, timeout_s))
            except (RuntimeError, ValueError, OSError) as exc:
                log.debug("offline status not confirmed", extra={"error": str(exc)})
            self.client.disconnect()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def reload_certificate(self) -> None:
        """Use the (renewed) certificate and CA files from now on: load them into the TLS
        context and reconnect, so the broker checks the new certificate at once rather than at
        some later reconnect. The outbox resends whatever was in flight."""
        if self._tls_context is None or self.config.cert_file is None:
            return
        self._load_client_certificate()
        if self.config.ca_file:
            self._tls_context.load_verify_locations(cafile=str(self.config.ca_file))
        if self.connected:
            log.info("reconnecting to the broker with the renewed certificate")
            self.client.disconnect()

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> bool:
        """Hand one QoS 1 message to paho; False when not connected (the outbox will resend)."""
        if not self.connected:
            return False
        info = self.client.publish(topic, payload, qos=kc.QOS, retain=retain)
        return info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS

    def refresh_retained(self, topic: str) -> bool:
        """Subscribe to ``topic`` once more so the broker sends its retained message again.

        The extra subscription is dropped as soon as the broker confirms it: the retained
        copy is queued for us by then, and our ``down/#`` subscription goes on carrying
        new documents (no doubled deliveries). False when not connected.
        """
        if not self.connected:
            return False
        result, mid = self.client.subscribe(topic, qos=kc.QOS)
        if result != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            return False
        self._refreshing[mid] = topic
        return True

    # ------------------------------------------------------------ network thread
    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self._connect()
                while not self._stop.is_set():
                    rc = self.client.loop(timeout=0.2)
                    if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                        break
            except (OSError, ssl.SSLError, ValueError) as exc:
                self.last_error = str(exc)
                self._failures.unreachable(str(exc), host=self.config.host, port=self.config.port)
            attempt, delay = self._connection_ended(started, attempt)
            if self._stop.is_set():
                break
            self._stop.wait(delay)
        with contextlib.suppress(OSError, ValueError):
            self.client.loop(timeout=0.1)  # flush the DISCONNECT

    def _connection_ended(self, started: float, attempt: int) -> tuple[int, float]:
        """After a connection (or an attempt) ends: report it once, then the next attempt's
        number and its jittered delay (a connection that held counts as a fresh start)."""
        self.subscribed = False
        if self.connected:
            self.connected = False
            self.callbacks.on_disconnected(self.last_error or "connection lost")
        attempt = 0 if time.monotonic() - started > STABLE_CONNECTION_S else attempt + 1
        # Full jitter from the very first retry (attempt + 1 doublings): terminals that lost the
        # broker at the same instant must not come back at the same instant.
        return attempt, full_jitter_delay(
            attempt + 1, self.config.reconnect_min_s, self.config.reconnect_max_s, self._rng
        )

    def _connect(self) -> None:
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self.config.session_expiry_s
        will = kc.will_publication(self.device_id, self.boot_id, clock_trusted=self.clock_trusted())
        self.client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
        self.client.connect(
            self.config.host,
            self.config.port,
            keepalive=self.config.keepalive_s,
            clean_start=False,
            properties=properties,
        )

    def _publish_status(self, presence: kc.Presence) -> paho.MQTTMessageInfo:
        status = kc.publication(
            kc.status_message(
                presence, device_id=self.device_id, boot_id=self.boot_id, clock_trusted=self.clock_trusted()
            )
        )
        return self.client.publish(status.topic, status.payload, qos=status.qos, retain=status.retain)

    # ------------------------------------------------------------ paho callbacks
    @staticmethod
    def _on_socket_open(client: paho.Client, userdata: Any, sock: paho.SocketLike) -> None:
        if isinstance(sock, socket.socket):  # a websocket transport has no Nagle to turn off
            with contextlib.suppress(OSError):  # nor has a unix socket
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            self.last_error = f"broker refused the connection: {reason_code}"
            self._failures.unreachable(self.last_error, host=self.config.host, port=self.config.port)
            client.disconnect()
            return
        self.connected = True
        self.connects += 1
        self.last_error = None
        self._failures.succeeded(host=self.config.host, port=self.config.port)
        client.subscribe(kc.device_subscription(self.device_id), qos=kc.QOS)
        self._publish_status(kc.Presence.ONLINE)
        session_present = bool(getattr(flags, "session_present", False))
        log.info(
            "connected to broker",
            extra={"host": self.config.host, "port": self.config.port, "session_present": session_present},
        )
        self.callbacks.on_connected(session_present)

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid: int, reason_codes: Any, properties: Any) -> None:
        refreshed = self._refreshing.pop(mid, None)
        if refreshed is not None:
            client.unsubscribe(refreshed)
            return
        failed = [str(code) for code in reason_codes if code.is_failure]
        if failed:
            log.error(
                "broker refused the subscription to our down topics; check the broker ACL",
                extra={"reasons": ",".join(failed)},
            )
            return
        self.subscribed = True

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        was_connected = self.connected
        self.connected = False
        self.subscribed = False
        if was_connected:
            reason = str(reason_code)
            log.info("disconnected from broker", extra={"reason": reason})
            self.callbacks.on_disconnected(reason)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        self.callbacks.on_message(message.topic, bytes(message.payload))
