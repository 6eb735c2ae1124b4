"""The cloud link component: drains the outbox and dispatches what the cloud sends.

Everything here runs on the agent's loop; paho's thread only forwards callbacks
through ``Agent.call_from_thread``. The drain keeps at most ``ack_window``
messages published-but-unacked, pages through the outbox in sequence order, sends
a backlog several rows per publish (``up/batch``), and after a reconnect starts
again from the oldest unacked row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from agent.clock import kernel_clock_synchronized
from agent.cloud.inbound import Inbound
from agent.cloud.mqtt_client import LinkCallbacks, MqttLink
from agent.cloud.outbox import OutboxRow
from agent.loop_failures import LoopFailures
from agent.runtime import Runtime
from agent.version import agent_version
from broker import contract as kc

log = logging.getLogger(__name__)

IDLE_CHECK_S = 1.0
# A drain of at least this many messages (a backlog after an outage) ends with a summary line;
# the single sale sent at once does not.
BACKLOG_SUMMARY_MIN = 100
# A message still unacked after a resend waits twice as long for the next one (up to this many
# ack timeouts), jittered: a cloud that is slow, not gone, is not buried in copies, and a fleet
# that lost the cloud at the same moment does not resend in lockstep.
RESEND_BACKOFF_MAX = 8
RESEND_JITTER = (0.8, 1.2)
_DOMAINS = frozenset(domain.value for domain in kc.StateDomain)


class InFlight(NamedTuple):
    seq: int
    due: float  # monotonic time after which it is resent
    resends: int


class CloudLink:
    name = "cloud"

    def __init__(
        self,
        runtime: Runtime,
        inbound: Inbound,
        *,
        connect_listeners: list[Callable[[], None]],
        peripherals: Callable[[], list[kc.Peripheral]],
    ) -> None:
        """``inbound`` already holds the components' state and command handlers (they register
        at construction); ``connect_listeners`` run after every (re)connect; ``peripherals``
        lists the devices for the state report."""
        self.config = runtime.config.mqtt
        self.device_id = runtime.device_id
        self.boot_id = runtime.boot_id
        self.window = self.config.ack_window
        self.outbox = runtime.outbox
        self.inbound = inbound
        self.inbound.republish = self._publish_now
        reload_config = runtime.reload_config
        # The link's own commands. The inbound outlives a link that failed to start, so a second
        # link (pairing trying again) takes them over instead of failing on a taken name.
        self.inbound.command_handlers[kc.CommandName.PING.value] = self._cmd_ping
        self.inbound.command_handlers[kc.CommandName.CONFIG_RELOAD.value] = lambda args: reload_config()
        self._peripherals = peripherals
        call_from_thread = runtime.call_from_thread
        self.mqtt = MqttLink(
            self.config,
            self.device_id,
            self.boot_id,
            LinkCallbacks(
                on_connected=lambda present: call_from_thread(self._on_connected, present),
                on_disconnected=lambda reason: call_from_thread(self._on_disconnected, reason),
                on_message=lambda topic, payload: call_from_thread(self._on_message, topic, payload),
            ),
            kernel_clock_synchronized,
        )
        self._in_flight: dict[uuid.UUID, InFlight] = {}
        self._next_due = math.inf  # earliest InFlight.due: the drain scans for resends only then
        self._rng = random.Random()
        self._cursor = 0  # highest seq published on the current connection
        self._settled: list[tuple[int, uuid.UUID]] = []
        self._refused: list[tuple[int, str]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.published = 0
        self.acked = 0
        self.rejected = 0  # acks that rejected a message (each logged at error)
        # From the first publish of a drain until the outbox is empty: (monotonic start, acked + rejected then).
        self._draining_since: tuple[float, int] | None = None
        self.resent = 0
        self.batches = 0
        self._batch_topic = kc.batch_topic(self.device_id)
        self.connect_listeners = connect_listeners
        self._state_waiters: dict[str, list[asyncio.Future[None]]] = {}  # domain -> refresh_state callers
        self._failures = LoopFailures(log, "outbox drain")
        runtime.store.add_commit_listener(self._wake_threadsafe)

    # ---------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.mqtt.start()
        self._task = asyncio.create_task(self._drain(), name="outbox-drain")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.to_thread(self._flush_settled)  # acks already received are not thrown away
        await asyncio.to_thread(self.mqtt.stop)

    def status(self) -> dict[str, Any]:
        stats = self.outbox.stats()
        broker = f"{self.config.host}:{self.config.port}"
        if self.mqtt.connected:
            link = f"connected to {broker}"
        else:  # why, where a person looks first (kassactl status), not only in --json
            reason = f" (last error: {self.mqtt.last_error})" if self.mqtt.last_error else ""
            link = f"disconnected from {broker}{reason}"
        age = "-" if stats.oldest_age_s is None else f"{stats.oldest_age_s:.0f} s"
        return {
            "summary": f"{link}; outbox {stats.depth} (oldest {age}), {len(self._in_flight)} in flight",
            "connected": self.mqtt.connected,
            "broker": broker,
            "last_error": self.mqtt.last_error,
            "outbox_depth": stats.depth,
            "outbox_oldest_age_s": stats.oldest_age_s,
            "outbox_rejected": stats.rejected,
            "in_flight": len(self._in_flight),
            "last_seq": self.outbox.last_seq(),
            "published": self.published,
            "acked": self.acked,
            "resent": self.resent,
            "batches": self.batches,
            "inbound_rejected": dict(self.inbound.rejections),
            "state_versions": self.inbound.applied_versions(),
        }

    # ------------------------------------------------------------------- drain
    def _wake_threadsafe(self) -> None:
        loop = getattr(self, "_loop", None)
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    async def _drain(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=IDLE_CHECK_S)
            self._wake.clear()
            try:
                if self._settled or self._refused:
                    await asyncio.to_thread(self._flush_settled)
                if self.mqtt.connected:
                    self._resend_overdue()
                    self._fill_window()
                    self._note_drained()
            except Exception as exc:  # a full disk or a bug must not end the drain for good
                self._failures.failed(exc)
                await asyncio.sleep(IDLE_CHECK_S)
            else:
                self._failures.succeeded()

    def _fill_window(self) -> None:
        room = self.window - len(self._in_flight)
        if room <= 0:
            return
        rows = self.outbox.after(self._cursor, room)
        if rows and self._draining_since is None:
            self._draining_since = (time.monotonic(), self.acked + self.rejected)
        for group in self._groups(rows):
            if len(group) == 1:
                sent = self.mqtt.publish(group[0].topic, group[0].payload)
            else:
                sent = self.mqtt.publish(self._batch_topic, kc.encode_batch([row.payload for row in group]))
                self.batches += sent
            if not sent:
                return
            due = time.monotonic() + self.config.ack_timeout_s
            for row in group:
                self._in_flight[row.message_id] = InFlight(row.seq, due, 0)
            self._next_due = min(self._next_due, due)
            self._cursor = group[-1].seq
            self.published += len(group)

    def _note_drained(self) -> None:
        """Once a drain has emptied the outbox: a summary line if it was a backlog."""
        if self._draining_since is None or self._in_flight or self._settled or self._refused:
            return
        if self.outbox.after(self._cursor, 1):
            return  # more to send (the window was full)
        started, settled_before = self._draining_since
        self._draining_since = None
        count = self.acked + self.rejected - settled_before
        if count >= BACKLOG_SUMMARY_MIN:
            seconds = time.monotonic() - started
            log.info(
                f"outbox drained: {count} messages in {seconds:.1f} s",
                extra={"messages": count, "seconds": round(seconds, 1), "per_s": round(count / max(seconds, 1e-3))},
            )

    def _groups(self, rows: list[OutboxRow]) -> Iterator[list[OutboxRow]]:
        """Consecutive rows in publishes of at most batch_max_messages / batch_max_bytes.

        A lone new sale goes out alone at once (nothing waits to fill a batch); only a
        backlog, e.g. after an outage, is sent in batches.
        """
        most, budget = self.config.batch_max_messages, self.config.batch_max_bytes
        group: list[OutboxRow] = []
        size = 0
        for row in rows:
            if group and (len(group) >= most or size + 1 + len(row.payload) > budget):
                yield group
                group, size = [], 0
            group.append(row)
            size += len(row.payload) + 1
        if group:
            yield group

    def _resend_overdue(self) -> None:
        now = time.monotonic()
        if now < self._next_due:
            return
        overdue = [(message_id, entry) for message_id, entry in self._in_flight.items() if entry.due <= now]
        self._next_due = min((entry.due for entry in self._in_flight.values() if entry.due > now), default=math.inf)
        # Resent one by one, never batched: a cloud that cannot read a batch still gets them.
        resent = 0
        for message_id, entry in overdue:
            row = self.outbox.get(entry.seq)
            if row is None:
                del self._in_flight[message_id]  # settled meanwhile
                continue
            if not self.mqtt.publish(row.topic, row.payload):
                self._next_due = now  # disconnected: a reconnect sends everything again anyway
                break
            wait = (
                self.config.ack_timeout_s
                * min(2 ** (entry.resends + 1), RESEND_BACKOFF_MAX)
                * self._rng.uniform(*RESEND_JITTER)
            )
            self._in_flight[message_id] = InFlight(entry.seq, now + wait, entry.resends + 1)
            self._next_due = min(self._next_due, now + wait)
            resent += 1
        self.resent += resent
        if resent:
            log.info(
                "resent messages the cloud did not ack in time",
                extra={"count": resent, "most_resends": max(entry.resends for _id, entry in overdue) + 1},
            )

    def _flush_settled(self) -> None:
        settled, refused = self._settled, self._refused
        self._settled, self._refused = [], []
        try:
            self.outbox.settle(settled, refused)
        except BaseException:
            # Not deleted (a full disk): keep the acks for the next try. Dropped, their rows
            # would stay in the outbox, out of the window, never sent or deleted until a reconnect.
            self._settled[:0] = settled
            self._refused[:0] = refused
            raise

    def _publish_now(self, publication: kc.Publication) -> None:
        self.mqtt.publish(publication.topic, publication.payload, retain=publication.retain)

    # -------------------------------------------------------------- connection
    def _on_connected(self, session_present: bool) -> None:
        self._in_flight.clear()
        self._next_due = math.inf
        self._cursor = 0  # resend everything still unacked, oldest first
        self._wake.set()
        self.report_state()
        for listener in self.connect_listeners:
            try:
                listener()
            except Exception:  # one listener's failure must not keep the others from running
                log.exception("connect listener failed")

    def report_state(self) -> None:
        """Tell the cloud what this device runs and has applied (on connect and after each push)."""
        try:
            stats = self.outbox.stats()
            first = self.outbox.after(0, 1)
            body = kc.DeviceState(
                software_version=agent_version(),
                applied_versions={
                    kc.StateDomain(d): v for d, v in self.inbound.applied_versions().items() if d in _DOMAINS
                },
                outbox_depth=stats.depth,
                oldest_unacked_seq=first[0].seq if first else None,
                hardware=self._peripherals(),
            )
            self.outbox.enqueue_one(body)
        except Exception:  # a report is informative; failing to queue one must not break the link
            log.exception("could not queue the device state report")

    async def refresh_state(self, domain: kc.StateDomain, timeout_s: float = 5.0) -> bool:
        """Have the broker send this domain's retained document again (a "Load" button).

        The doc goes through the usual version check, so an unchanged one is a no-op.
        True when a document arrived within ``timeout_s`` (False: none retained, or offline).
        """
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self._state_waiters.setdefault(domain.value, [])
        waiters.append(waiter)
        try:
            if not self.mqtt.refresh_retained(kc.state_topic(self.device_id, domain)):
                return False
            await asyncio.wait_for(waiter, timeout_s)
            return True
        except TimeoutError:
            return False
        finally:
            if waiter in waiters:
                waiters.remove(waiter)

    def _state_arrived(self, domain: str) -> None:
        for waiter in self._state_waiters.pop(domain, []):
            if not waiter.done():
                waiter.set_result(None)

    def _on_disconnected(self, reason: str) -> None:
        self._in_flight.clear()
        self._next_due = math.inf
        self._cursor = 0

    # ---------------------------------------------------------------- inbound
    def _on_message(self, topic: str, payload: bytes) -> None:
        parsed = kc.parse_message(topic, payload)
        if isinstance(parsed, kc.Rejection):
            self.inbound.reject(parsed)
            return
        if parsed.topic.device_id != self.device_id:
            self.inbound.reject(
                kc.Rejection(
                    kc.RejectReason.WRONG_DEVICE,
                    f"message for {parsed.topic.device_id}",
                    topic,
                    parsed.topic.device_id,
                    parsed.envelope.id,
                )
            )
            return
        try:
            match parsed.type:
                case kc.MessageType.ACK:
                    assert isinstance(parsed.body, kc.Ack), "parse_message pairs each type with its body"
                    self._on_ack(parsed.body)
                case kc.MessageType.STATE:
                    assert isinstance(parsed.body, kc.StateDoc), "parse_message pairs each type with its body"
                    if self.inbound.handle_state(parsed.envelope):
                        self.report_state()
                    self._state_arrived(parsed.body.domain.value)
                case kc.MessageType.COMMAND:
                    self.inbound.handle_command(parsed.envelope)
                case _:
                    self.inbound.reject(
                        kc.Rejection(
                            kc.RejectReason.TYPE_MISMATCH,
                            f"{parsed.type} is not sent to devices",
                            topic,
                            self.device_id,
                            parsed.envelope.id,
                        )
                    )
        except Exception:
            # e.g. a full disk while recording a command: nothing was recorded, and the loop
            # goes on; retained state comes again on reconnect, commands when the cloud resends.
            log.exception(
                "inbound message could not be applied", extra={"type": str(parsed.type), "id": str(parsed.envelope.id)}
            )

    def _on_ack(self, ack: kc.Ack) -> None:
        # Only acks for messages in the current window count. An ack for a message sent
        # before a reconnect or restart is ignored: that row is resent from the outbox and
        # acked again (the cloud acks duplicates), so ignoring it loses nothing.
        for message_id in ack.acked_ids:
            entry = self._in_flight.pop(message_id, None)
            if entry is not None:
                self._settled.append((entry.seq, message_id))
                self.acked += 1
        for rejection in ack.rejected:
            entry = self._in_flight.pop(rejection.id, None)
            if entry is not None:
                self.rejected += 1
                log.error(
                    "cloud refused a message for good; kept in outbox_rejected",
                    extra={"seq": entry.seq, "reason": rejection.reason, "detail": rejection.detail},
                )
                self._refused.append((entry.seq, rejection.reason))
        self._wake.set()

    # --------------------------------------------------------------- commands
    def _cmd_ping(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"pong": True, "boot_id": str(self.boot_id), "outbox_depth": self.outbox.stats().depth}
