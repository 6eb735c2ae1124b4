"""The ingest worker: receives up and status messages over MQTT and applies them in batches.

The broker connection (session, subscriptions, reconnects, PUBACKs) is `connection.py`;
this module is the work. Delivery, in order, per batch:
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
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import NamedTuple

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from broker import contract as kc
from broker.backoff import floored_jitter_delay
from cloud_api.ingest.apply import apply_batch
from cloud_api.ingest.client import TlsFiles
from cloud_api.ingest.connection import IngestConnection
from cloud_api.ingest.fastparse import parse, parse_batch
from cloud_api.ingest.plan import AckPlan
from cloud_api.ingest.sql import ConcurrentChangeError
from cloud_api.ingest.up import Up

log = logging.getLogger(__name__)

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
    # Parsed on arrival (see _receive); a batch publish (up/batch) carries a list.
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
        self._stats = IngestStats()
        self._stats_lock = threading.Lock()
        self._inbox: deque[_Received] = deque()
        self._arrived = threading.Event()
        self._awaiting = False  # the apply thread waits for _arrived
        self._stopping = threading.Event()
        self._connection = IngestConnection(
            host=host,
            port=port,
            client_id=self.client_id,
            username=username,
            password=password,
            tls=tls,
            session_expiry_s=self.options.session_expiry_s,
            receive_maximum=self.options.receive_maximum,
            keepalive_s=self.options.keepalive_s,
            reconnect_min_s=self.options.reconnect_min_s,
            reconnect_max_s=self.options.reconnect_max_s,
            deliver=self._receive,
            on_connected=lambda: self._count(connects=1),
            stopping=self._stopping,
        )
        self._applier: threading.Thread | None = None

    # ------------------------------------------------------------------ control
    def start(self) -> IngestWorker:
        self._stopping.clear()
        _freeze_startup_objects()
        self._connection.start()
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
        self._connection.stop()
        log.info("ingest worker stopped", extra={"client_id": self.client_id, **vars(self.stats())})

    def stats(self) -> IngestStats:
        with self._stats_lock:
            return replace(self._stats)

    def wait_subscribed(self, timeout_s: float) -> bool:
        """True once the broker confirmed the subscriptions (messages published from then
        on reach this worker's session)."""
        return self._connection.wait_subscribed(timeout_s)

    # ------------------------------------------------------------------ receiving
    def _receive(self, connection: int, mid: int, qos: int, topic: bytes, payload: bytes) -> None:
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
        self._inbox.append(_Received(connection, mid, qos, message))
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
            if isinstance(item.message, list):
                messages.extend(item.message)
            else:
                messages.append(item.message)
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
        self._connection.puback(batch)
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
        envelopes = plan.envelopes()
        if self._connection.publish(kc.publication(envelope) for envelope in envelopes):
            self._count(acks_published=len(envelopes))

    def _count(self, **increments: int) -> None:
        with self._stats_lock:
            for name, value in increments.items():
                setattr(self._stats, name, getattr(self._stats, name) + value)
