"""The ingest worker: receives up and status messages over MQTT and applies them in batches.

Delivery, in order, per batch:
  1. paho's network thread parses and queues each received message (PUBACK withheld:
     manual_ack);
  2. the apply thread takes every queued message (up to `batch_max`; an up/batch publish
     counts its messages and is never split) as soon as the queue
     stops growing, waiting at most `batch_window_s` for a burst to end, and applies them in
     ONE database transaction (`apply_batch`);
  3. after the commit it publishes one down/ack per device, then PUBACKs the messages.
Under load a batch is whatever arrived while the previous one was applied, so batches grow
with the load; an idle worker applies a lone message within `batch_settle_s`.
A worker killed before step 3 leaves the messages un-PUBACKed in its persistent session, so
the broker delivers them again when a worker with the same id reconnects; they are then
duplicates, change nothing, and are acked. Any number of workers may share the subscription.
"""

from __future__ import annotations

import gc
import logging
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from broker import contract as kc
from broker.backoff import floored_jitter_delay
from cloud_api.ingest.apply import apply_batch
from cloud_api.ingest.client import IngestClient, TlsFiles
from cloud_api.ingest.fastparse import parse, parse_batch
from cloud_api.ingest.plan import AckPlan
from cloud_api.ingest.sql import ConcurrentChangeError
from cloud_api.ingest.up import Up
from cloud_api.mqtt_support import set_nodelay

log = logging.getLogger(__name__)

# A connection that stayed up this long resets the reconnect backoff to its minimum.
STABLE_CONNECTION_S = 10.0
# Concurrent workers colliding on one key resolve on the first retry; more means a bug.
MAX_RACE_RETRIES = 5
_BATCH_SUFFIX = "/up/" + kc.BATCH_TOPIC_LEVEL


@dataclass(frozen=True)
class WorkerOptions:
    batch_max: int = 500
    # A batch is taken once the queue has not grown for batch_settle_s, or batch_window_s
    # after its first message, or at batch_max messages, whichever comes first.
    batch_window_s: float = 0.02
    batch_settle_s: float = 0.001
    session_expiry_s: int = 86_400
    # Un-PUBACKed messages the broker may have in flight to us: bounds memory and what a
    # crashed worker holds back until it returns.
    receive_maximum: int = 2_000
    keepalive_s: int = 30
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    db_retry_max_s: float = 10.0


@dataclass
class IngestStats:
    received: int = 0
    applied: int = 0
    duplicates: int = 0
    rejected: int = 0
    invalid: int = 0
    presence: int = 0
    failed: int = 0  # could not be applied even alone; PUBACKed without down/ack (device resends)
    batches: int = 0
    acks_published: int = 0
    connects: int = 0


Message = kc.Parsed | kc.Rejection | Up


class _Received(NamedTuple):
    connection: int  # MQTT packet ids are per connection: PUBACK only on the same one
    mid: int
    qos: int
    # Parsed on arrival (see _on_publish); a batch publish (up/batch) carries a list.
    message: Message | list[Message]


def _is_transient(exc: Exception) -> bool:
    """Errors that a retry of the same batch can get past: locks, deadlocks, lost connections."""
    if isinstance(exc, (ConcurrentChangeError, OperationalError)):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


_frozen = False


def _freeze_startup_objects() -> None:
    """What exists when the first worker starts (modules, schemas, metadata) lives as long as
    the process: keep it out of the collector's full passes, which batches of parsed
    messages trigger often. Once per process."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()


class IngestWorker:
    def __init__(
        self,
        engine: Engine,
        host: str,
        port: int,
        worker_id: str,
        username: str | None = None,
        password: str | None = None,
        options: WorkerOptions | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        self.engine = engine
        self.host = host
        self.port = port
        self.worker_id = worker_id
        self.client_id = f"kassa-ingest-{worker_id}"
        self.options = options or WorkerOptions()
        self._username = username
        self._tls = tls
        self._password = password
        self._stats = IngestStats()
        self._stats_lock = threading.Lock()
        self._inbox: deque[_Received] = deque()
        self._arrived = threading.Event()
        self._awaiting = False  # the apply thread waits for _arrived
        self._stopping = threading.Event()
        self._subscribed = threading.Event()
        self._connection = 0
        self._connection_lock = threading.Lock()
        self._connected_at = 0.0
        self._reconnect_attempt = 0
        self._client: IngestClient | None = None
        self._applier: threading.Thread | None = None

    # ------------------------------------------------------------------ control
    def start(self) -> IngestWorker:
        self._stopping.clear()
        _freeze_startup_objects()
        self._client = self._make_client()
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self.options.session_expiry_s
        properties.ReceiveMaximum = self.options.receive_maximum
        self._client.connect_async(
            self.host, self.port, keepalive=self.options.keepalive_s, clean_start=False, properties=properties
        )
        self._client.loop_start()
        self._applier = threading.Thread(target=self._apply_loop, name=f"ingest-{self.worker_id}", daemon=True)
        self._applier.start()
        log.info("ingest worker started", extra={"client_id": self.client_id, "host": self.host, "port": self.port})
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Finish the batch in hand, then disconnect. Queued, unapplied messages stay
        un-PUBACKed in the broker session and come back when the worker returns."""
        self._stopping.set()
        if self._applier is not None:
            self._applier.join(timeout_s)
            self._applier = None
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None
        log.info("ingest worker stopped", extra={"client_id": self.client_id, **vars(self.stats())})

    def stats(self) -> IngestStats:
        with self._stats_lock:
            return replace(self._stats)

    def wait_subscribed(self, timeout_s: float) -> bool:
        """True once the broker confirmed the subscriptions (messages published from then
        on reach this worker's session)."""
        return self._subscribed.wait(timeout_s)

    # ------------------------------------------------------------------ MQTT side
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
        client.reconnect_delay_set(self.options.reconnect_min_s, self.options.reconnect_min_s)
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
        self._count(connects=1)
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
        delay = floored_jitter_delay(
            self._reconnect_attempt, self.options.reconnect_min_s, self.options.reconnect_max_s
        )
        self._reconnect_attempt += 1
        if self._client is not None:
            self._client.reconnect_delay_set(delay, delay)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        self._on_publish(message.mid, message.qos, message._topic, message.payload)

    def _on_publish(self, mid: int, qos: int, topic: bytes, payload: bytes) -> None:
        try:
            text = topic.decode("utf-8")
        except UnicodeDecodeError:  # the broker should have refused it; never crash the loop
            text = topic.decode("utf-8", "replace")
        # Parsed here, on the network thread: it runs while the apply thread waits for the
        # database, so parsing costs the batch no time of its own.
        try:
            if text.endswith(_BATCH_SUFFIX):
                message: Message | list[Message] = parse_batch(text, bytes(payload))
            else:
                message = parse(text, bytes(payload))
        except Exception:
            # Not PUBACKed: the broker delivers it again after the next reconnect.
            log.exception("received message could not be parsed", extra={"topic": text[:256]})
            return
        self._inbox.append(_Received(self._connection, mid, qos, message))
        if self._awaiting:
            self._arrived.set()

    # ------------------------------------------------------------------ apply side
    def _apply_loop(self) -> None:
        while not self._stopping.is_set():
            batch = self._collect()
            if not batch:
                continue
            try:
                self._process(batch)
            except Exception:
                log.exception("ingest batch failed; messages left for redelivery", extra={"messages": len(batch)})

    def _collect(self) -> list[_Received]:
        inbox = self._inbox
        if not inbox:
            self._arrived.clear()
            self._awaiting = True  # set before looking again: an arrival from now on wakes us
            if not inbox:
                self._arrived.wait(0.1)
            self._awaiting = False
            if not inbox:
                return []
        options = self.options
        deadline = time.monotonic() + options.batch_window_s
        seen = len(inbox)
        # Sleeping (not waiting on each arrival) lets the network thread read a whole burst.
        while seen < options.batch_max and not self._stopping.is_set():
            time.sleep(options.batch_settle_s)
            now_seen = len(inbox)
            if now_seen == seen or time.monotonic() >= deadline:
                break
            seen = now_seen
        # Up to batch_max messages, counting those inside batch publishes; a publish is never
        # split (its one PUBACK waits for all its messages).
        taken: list[_Received] = []
        messages = 0
        while inbox and messages < options.batch_max:
            item = inbox.popleft()
            taken.append(item)
            messages += len(item.message) if type(item.message) is list else 1
        return taken

    def _process(self, batch: list[_Received]) -> None:
        started = time.perf_counter()
        log.debug("applying batch", extra={"messages": len(batch)})
        messages: list[Message] = []
        for item in batch:
            if type(item.message) is list:
                messages.extend(item.message)
            else:
                messages.append(item.message)  # type: ignore[arg-type]
        self._count(received=len(messages))
        try:
            plan = self._commit(messages)
        except Exception:
            log.exception(
                "batch could not be applied; applying its messages one by one", extra={"messages": len(messages)}
            )
            for message in messages:
                if not self._apply_alone(message):
                    return  # stopping: no PUBACK, the whole batch comes back (as duplicates)
        else:
            if plan is None:
                return  # stopping while the database kept failing: no PUBACK, redelivered later
            committed = time.perf_counter()
            self._publish(plan)
            log.debug(
                "batch applied",
                extra={
                    "messages": len(batch),
                    "applied": plan.applied,
                    "duplicates": plan.duplicates,
                    "commit_ms": round((committed - started) * 1000, 1),
                    "publish_ms": round((time.perf_counter() - committed) * 1000, 1),
                },
            )
        self._puback(batch)
        self._count(batches=1)

    def _commit(self, messages: list[Message]) -> AckPlan | None:
        """Apply in one transaction, retrying while the database is unavailable or busy.

        None when the worker was stopped before the batch could commit.
        """
        attempt = races = 0
        while True:
            try:
                with Session(self.engine) as session, session.begin():
                    return apply_batch(session, messages)
            except (ConcurrentChangeError, DBAPIError) as exc:
                if not _is_transient(exc):
                    raise
                if isinstance(exc, ConcurrentChangeError):
                    races += 1
                    if races > MAX_RACE_RETRIES:  # not a race after all: let the caller isolate it
                        raise
                attempt += 1
                log.warning(
                    "database unavailable or busy; retrying the batch",
                    extra={"attempt": attempt, "error": str(exc)[:300]},
                )
                if self._stopping.wait(floored_jitter_delay(attempt, 0.05, self.options.db_retry_max_s)):
                    return None

    def _apply_alone(self, message: Message) -> bool:
        """Apply one message in its own transaction; False when stopped before it could."""
        try:
            plan = self._commit([message])
        except Exception:
            # PUBACKed anyway so that it does not hold the receive window; the device keeps
            # it in its outbox and resends it after its ack timeout.
            self._count(failed=1)
            known = message.envelope if isinstance(message, kc.Parsed) else message
            message_id = getattr(known, "id", None)
            log.exception(
                "message could not be applied; the device will send it again",
                extra={"id": str(message_id) if message_id else None, "device_id": getattr(known, "device_id", None)},
            )
            return True
        if plan is None:
            return False
        self._publish(plan)
        return True

    def _publish(self, plan: AckPlan) -> None:
        """Send the down/acks of a committed batch (QoS 1; a lost ack only costs a resend)."""
        # Counted first: whoever sees an ack also sees it in the counters.
        self._count(
            applied=plan.applied,
            duplicates=plan.duplicates,
            rejected=plan.rejected,
            invalid=plan.invalid,
            presence=plan.presence,
        )
        client = self._client
        if client is None:
            return
        envelopes = plan.envelopes()
        for envelope in envelopes:
            publication = kc.publication(envelope)
            client.publish(publication.topic, publication.payload, qos=publication.qos, retain=publication.retain)
        self._count(acks_published=len(envelopes))

    def _puback(self, batch: list[_Received]) -> None:
        client = self._client
        if client is None:
            return
        with self._connection_lock:
            # Received on an earlier connection: the broker delivers it again on this one.
            connection = self._connection
            client.ack_many(item.mid for item in batch if item.connection == connection and item.qos == 1)
            for item in batch:
                if item.connection == connection and item.qos > 1:
                    client.ack(item.mid, item.qos)

    def _count(self, **increments: int) -> None:
        with self._stats_lock:
            for name, value in increments.items():
                setattr(self._stats, name, getattr(self._stats, name) + value)
