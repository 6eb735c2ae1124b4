"""The publisher: sends every unpublished desired-state version and every due command.

It runs as a thread of `kassa-cloud worker` (any number of workers may run it; the lease
lets one publish at a time while the others stand by). It works in waves:
  1. read the commands that are due, then the documents whose latest version is unpublished
     (oldest change first, a page at a time), until the wave holds `wave_max` messages or
     `wave_max_bytes`;
  2. publish them (state docs retained, everything QoS 1) with at most one message per
     document or command in flight, so two versions of a document never overtake each other;
  3. once every PUBACK of the wave is in, record in one transaction what the broker accepted
     (`published_version`, a command's attempt and its next resend), then start the next wave.
Nothing is marked before its PUBACK; while the broker is down nothing is published and
the rows stay pending, so a change is never lost, only delayed. A crash between PUBACK and
the record makes the next publisher send that version again, which devices ignore.
The database is polled every `poll_s` (an indexed look at the pending rows), so a change
made by any API process is on its way within that time.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from broker.backoff import floored_jitter_delay
from cloud_api.pushes import lease, outgoing
from cloud_api.pushes.mqtt import BrokerOptions, PushClient
from cloud_api.pushes.outgoing import CommandToSend, DocToSend, Key
from cloud_api.pushes.stale import StaleCheck

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PublisherOptions:
    poll_s: float = 0.25  # how soon a change in the database is noticed
    wave_max: int = 500  # messages per wave (documents and commands together)
    wave_max_bytes: int = 32 * 1024 * 1024  # state docs may be up to 2 MiB each
    # A wave not fully PUBACKed this long after it was sent, on a live connection, means
    # the connection is stuck: it is replaced and the wave sent again.
    ack_timeout_s: float = 30.0
    lease_s: float = 15.0  # renewed every lease_s / 3; a standby takes over after it lapses
    command_resend_s: float = 30.0  # first resend after this, doubling with each attempt
    command_resend_max_s: float = 600.0
    command_max_attempts: int = 5
    close_commands_every_s: float = 1.0
    failed_retry_max_s: float = 60.0  # a message the broker refused (e.g. ACL) is retried later
    # A device's state report this old that still shows an older version than was published
    # before it gets the document again (see stale.py); checked every stale_every_s.
    stale_settle_s: float = 30.0
    stale_every_s: float = 10.0


@dataclass
class PublisherStats:
    leader: bool = False
    waves: int = 0
    # PUBACKed and recorded by this process (also a late record that changed nothing), counted
    # just after the commit: a reader may see the rows published a moment before the count.
    docs_published: int = 0
    commands_sent: int = 0
    refused: int = 0  # PUBACK with a failure reason
    commands_closed: int = 0
    connection_resets: int = 0
    republished: int = 0  # documents sent again because a device reported an older version


class PushPublisher:
    def __init__(
        self,
        engine: Engine,
        broker: BrokerOptions,
        *,
        holder: str | None = None,
        options: PublisherOptions | None = None,
    ) -> None:
        self.engine = engine
        self.broker = broker
        self.options = options or PublisherOptions()
        # Unique per process: two workers started with one worker id still hold distinct leases.
        self.holder = holder or f"{broker.client_id}-{uuid.uuid4().hex[:12]}"
        self._client: PushClient | None = None
        self._in_flight: dict[int, DocToSend | CommandToSend] = {}  # packet id -> what it carries
        self._accepted: list[DocToSend | CommandToSend] = []  # PUBACKed, not yet recorded
        self._refused: dict[Key, tuple[int, float]] = {}  # key -> (failures, retry after)
        self._wave_started = 0.0
        self._lease_valid_until = 0.0  # monotonic: publish only before this
        self._next_lease_check = 0.0
        self._next_close = 0.0
        self._db_failures = 0
        self._stale = StaleCheck(self.options.stale_settle_s, self.options.stale_every_s)
        self._stats = PublisherStats()
        self._stats_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ control
    def start(self) -> PushPublisher:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="push-publisher", daemon=True)
        self._thread.start()
        log.info(
            "push publisher started", extra={"holder": self.holder, "host": self.broker.host, "port": self.broker.port}
        )
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        self._drop_client()
        if self._lease_valid_until:
            try:
                lease.release(self.engine, self.holder)
            except SQLAlchemyError as exc:
                log.warning("could not release the publisher lease", extra={"error": str(exc)[:300]})
        log.info("push publisher stopped", extra={"holder": self.holder, **vars(self.stats())})

    def wake(self) -> None:
        """Look at the database now rather than at the next poll."""
        self._wake.set()

    def stats(self) -> PublisherStats:
        with self._stats_lock:
            return replace(self._stats)

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    # ------------------------------------------------------------------ the loop
    def _run(self) -> None:
        while not self._stopping.is_set():
            # Cleared before the step: a PUBACK arriving during it ends the wait at once.
            self._wake.clear()
            try:
                wait_s = self._step()
            except Exception:
                log.exception("publisher step failed; retrying")
                wait_s = self.options.poll_s
            self._wake.wait(wait_s)

    def _step(self) -> float:
        """One pass; returns how long to wait before the next (an ack or wake() ends it early)."""
        if not self._keep_lease():
            return max(0.05, self._next_lease_check - time.monotonic())
        client = self._ensure_client()
        self._collect_acks(client)
        if self._in_flight:
            waited = time.monotonic() - max(self._wave_started, client.connected_since)
            if client.connected and waited > self.options.ack_timeout_s:
                log.warning(
                    "broker did not acknowledge a wave in time; reconnecting",
                    extra={"unacknowledged": len(self._in_flight), "ack_timeout_s": self.options.ack_timeout_s},
                )
                self._count(connection_resets=1)
                self._drop_client()
            return self.options.poll_s
        if self._accepted and not self._record_accepted():
            return floored_jitter_delay(self._db_failures, 0.1, 10.0)
        if not client.connected:
            return self.options.poll_s
        try:
            self._republish_stale()
            self._send_wave(client)
        except SQLAlchemyError as exc:
            self._db_failures += 1
            log.warning("database unavailable; publishing waits", extra={"error": str(exc)[:300]})
            return floored_jitter_delay(self._db_failures, 0.1, 10.0)
        self._db_failures = 0
        # After a wave the PUBACKs wake the loop; the next wave follows the last one.
        return self.options.poll_s

    # ------------------------------------------------------------------ lease
    def _keep_lease(self) -> bool:
        now = time.monotonic()
        if now >= self._next_lease_check:
            interval = self.options.lease_s / 3
            self._next_lease_check = now + interval
            try:
                held = lease.take_or_renew(self.engine, self.holder, self.options.lease_s)
            except SQLAlchemyError as exc:
                log.warning("cannot renew the publisher lease", extra={"error": str(exc)[:300]})
                held = False
            if held:
                was_leader = now < self._lease_valid_until
                # Stop a third of the lease early: by the time another publisher may take
                # it over, this one has stopped publishing.
                self._lease_valid_until = now + self.options.lease_s * 2 / 3
                if not was_leader:
                    log.info("publisher holds the lease; publishing", extra={"holder": self.holder})
        leader = time.monotonic() < self._lease_valid_until
        with self._stats_lock:
            self._stats.leader = leader
        if not leader and self._client is not None:
            log.info("publisher lost the lease; standing by", extra={"holder": self.holder})
            self._drop_client()
        return leader

    # ------------------------------------------------------------------ MQTT
    def _ensure_client(self) -> PushClient:
        if self._client is None:
            self._client = PushClient(self.broker, on_ack=self._wake.set).start()
        return self._client

    def _drop_client(self) -> None:
        """Disconnect and forget the wave in flight: its rows are still unpublished in the
        database, and a fresh client cannot resend a stale copy later."""
        client, self._client = self._client, None
        self._in_flight.clear()
        if client is not None:
            client.stop()

    def _collect_acks(self, client: PushClient) -> None:
        for ack in client.take_acks():
            item = self._in_flight.pop(ack.mid, None)
            if item is None:
                continue
            key = item.key
            if ack.accepted:
                self._refused.pop(key, None)
                self._accepted.append(item)
                continue
            failures = self._refused.get(key, (0, 0.0))[0] + 1
            delay = floored_jitter_delay(failures, 1.0, self.options.failed_retry_max_s)
            self._refused[key] = (failures, time.monotonic() + delay)
            self._count(refused=1)
            log.error(
                "broker refused a push; retrying later",
                extra={"what": "/".join(key), "reason": ack.reason, "retry_in_s": round(delay, 1)},
            )

    # ------------------------------------------------------------------ database
    def _record_accepted(self) -> bool:
        docs = [(i.device_id, i.domain, i.version) for i in self._accepted if isinstance(i, DocToSend)]
        commands = [i for i in self._accepted if isinstance(i, CommandToSend)]
        now = datetime.now(UTC)
        sent = [(c.command_id, now + timedelta(seconds=self._resend_delay(c.attempts + 1))) for c in commands]
        try:
            with Session(self.engine) as session, session.begin():
                outgoing.mark_docs_published(session, docs, now)
                outgoing.mark_commands_sent(session, sent, now)
        except SQLAlchemyError as exc:
            self._db_failures += 1
            log.warning("could not record published messages; retrying", extra={"error": str(exc)[:300]})
            return False
        self._db_failures = 0
        self._accepted.clear()
        self._count(docs_published=len(docs), commands_sent=len(commands))
        return True

    def _republish_stale(self) -> None:
        with Session(self.engine) as session, session.begin():
            marked = self._stale.run(session)
        if marked:
            log.warning(
                "documents marked for publishing again: devices reported older versions "
                "(a broker restart may have lost retained messages)",
                extra={"documents": marked},
            )
            self._count(republished=marked)

    def _resend_delay(self, attempts: int) -> float:
        o = self.options
        return min(o.command_resend_max_s, o.command_resend_s * 2 ** min(attempts - 1, 20))

    def _send_wave(self, client: PushClient) -> int:
        """Publish due commands, then unpublished documents, up to one wave; returns how many."""
        o = self.options
        now = time.monotonic()
        # A key refused long ago starts its backoff afresh.
        self._refused = {key: entry for key, entry in self._refused.items() if entry[1] > now - 3600}
        waiting = {key for key, (_failures, retry_at) in self._refused.items() if retry_at > now}
        self._wave_started = now
        sent = size = 0
        with Session(self.engine) as session, session.begin():
            if now >= self._next_close:
                self._next_close = now + o.close_commands_every_s
                closed = outgoing.close_finished_commands(session, datetime.now(UTC), o.command_max_attempts)
                if closed:
                    self._count(commands_closed=closed)
            due = outgoing.due_commands(session, datetime.now(UTC), o.wave_max + len(waiting), o.command_max_attempts)
            pending: Iterator[DocToSend | CommandToSend] = itertools.chain(due, outgoing.unpublished_docs(session))
            for item in pending:
                # The lease is checked again: reading may have taken long enough for it to lapse.
                if sent >= o.wave_max or size >= o.wave_max_bytes or time.monotonic() >= self._lease_valid_until:
                    break
                if item.key in waiting:
                    continue
                try:
                    publication = item.publication()
                except ValueError as exc:  # a row written around set_doc / create_command
                    log.error(
                        "cannot build a push from the database row; skipped",
                        extra={"what": "/".join(item.key), "problem": str(exc)[:300]},
                    )
                    self._refused[item.key] = (1, now + o.failed_retry_max_s)
                    continue
                mid = client.publish(publication)
                if mid is None:
                    break
                self._in_flight[mid] = item
                sent += 1
                size += len(publication.payload)
        if sent:
            self._count(waves=1)
        return sent

    def _count(self, **increments: int) -> None:
        with self._stats_lock:
            for name, value in increments.items():
                setattr(self._stats, name, getattr(self._stats, name) + value)
