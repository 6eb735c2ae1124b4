"""The agent's MQTT link with its network loop on the swarm's asyncio loop instead of a thread.

``LoopMqttLink`` is ``agent.cloud.mqtt_client.MqttLink`` with one method replaced: ``_run``,
the thread body, becomes ``_run_on_loop``, a coroutine that does the same steps in the same
order (connect, serve the connection until it ends, report the disconnect, back off, again)
with ``await`` where the thread blocks. Everything else is the agent's own code: the paho
client from ``MqttLink._make_client`` (client id = device id, MQTT 5, persistent session,
in-flight window, TCP_NODELAY, no paho auto-reconnect), ``_connect`` (session expiry, the
retained ``offline`` will), the callbacks (``down/#`` subscription and retained ``online``
status on connect, messages forwarded to the cloud link), and the reconnect policy:
``broker.backoff.full_jitter_delay`` (between 0 and ``min(reconnect_max_s, reconnect_min_s *
2**(attempt+1))``) with the attempt counter reset after ``STABLE_CONNECTION_S`` of uptime.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from typing import Any

import paho.mqtt.client as paho

from agent.cloud.mqtt_client import MqttLink
from bench.fleet.mqtt_loop import PahoOnLoop, abort_connecting, tcp_established
from broker import contract as kc


class LoopMqttLink(MqttLink):
    def __init__(self, base: MqttLink, driver: PahoOnLoop) -> None:
        super().__init__(base.config, base.device_id, base.boot_id, base.callbacks, base.clock_trusted)
        self.driver = driver
        self._closed: asyncio.Future[None] | None = None
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None  # type: ignore[assignment]
        self.connect_times: list[float] = []  # time.monotonic() of every CONNACK accepted
        self.disconnect_times: list[float] = []
        self.attempts = 0  # connection attempts, successful or not
        self.attempt_times: list[float] = []  # when each attempt started (after its backoff delay)
        self.roster_arrivals: list[float] = []  # when a cashiers document came off the socket
        driver.attach(self.client, self._socket_closed)

    # ----------------------------------------------------------------- control
    def start(self) -> None:
        self._stop.clear()
        self._stopping.clear()
        self._task = self.driver.loop.create_task(self._run_on_loop(), name=f"mqtt-{self.device_id}")

    def stop(self, timeout_s: float = 0.0) -> None:
        """On the loop: say ``offline`` and disconnect; the runner ends once the socket closes."""
        self._stop.set()
        self._stopping.set()
        if self.connected:
            self._publish_status(kc.Presence.OFFLINE)
            self.client.disconnect()
        elif self.client.socket() is not None:
            abort_connecting(self.client)

    async def stopped(self) -> None:
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    # ---------------------------------------------------------- the runner
    async def _run_on_loop(self) -> None:
        """``MqttLink._run`` on the loop: the same steps, the same backoff."""
        loop = self.driver.loop
        attempt = 0
        while not self._stop.is_set():
            started = time.monotonic()
            self._closed = loop.create_future()
            self.attempts += 1
            self.attempt_times.append(started)
            try:
                self._connect()
            except (OSError, ssl.SSLError, ValueError) as exc:
                self.last_error = str(exc)
            else:
                await self._connection_ends()
            attempt, delay = self._connection_ended(started, attempt)
            if self._stop.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _connection_ends(self) -> None:
        closed = self._closed
        assert closed is not None
        # paho's blocking connect gives up after connect_timeout; so does this one.
        done, _ = await asyncio.wait([closed], timeout=self.client.connect_timeout)
        if not done and not tcp_established(self.client):
            self.last_error = "timed out"
            abort_connecting(self.client)
        await closed

    def _socket_closed(self) -> None:
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    # ------------------------------------------------------------ callbacks
    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        super()._on_connect(client, userdata, flags, reason_code, properties)
        if self.connected:
            self.connect_times.append(time.monotonic())

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if self.connected:
            self.disconnect_times.append(time.monotonic())
        super()._on_disconnect(client, userdata, flags, reason_code, properties)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        if message.topic.endswith(ROSTER_TOPIC_SUFFIX):
            self.roster_arrivals.append(time.monotonic())
        super()._on_message(client, userdata, message)


ROSTER_TOPIC_SUFFIX = "/down/state/" + kc.StateDomain.CASHIERS.value
