"""A broker that refuses connections is reported once, with the reason, and once when it works again."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable

import pytest

from agent.cloud.mqtt_client import LinkCallbacks, MqttLink
from agent.config import MqttConfig
from broker.launcher import Mosquitto
from tests.posapi.support import wait_for


def _wait(condition: Callable[[], bool], what: str) -> None:
    wait_for(condition, 20, what)  # a bound for a hung test, not a pace: each wait ends on its event


def test_a_refused_broker_gives_one_warning_with_the_reason_and_one_works_again(
    mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    assert mosquitto.port is not None
    connected = threading.Event()
    link = MqttLink(
        MqttConfig(host=mosquitto.host, port=mosquitto.port, reconnect_min_s=0.01, reconnect_max_s=0.05),
        "dev-logs",
        uuid.uuid4(),
        LinkCallbacks(
            on_connected=lambda _session: connected.set(), on_disconnected=lambda _r: None, on_message=lambda *_: None
        ),
        clock_trusted=lambda: True,
    )
    with caplog.at_level(logging.DEBUG, logger="agent.cloud.mqtt_client"):
        link.start()
        try:
            _wait(connected.is_set, "the first connection")
            mosquitto.stop()
            attempts_seen = link._failures.attempts
            _wait(lambda: link._failures.attempts >= attempts_seen + 5, "five refused connection attempts")
            connected.clear()
            mosquitto.start()
            _wait(connected.is_set, "the connection after the broker came back")
        finally:
            link.stop()
    ours = [r for r in caplog.records if r.name == "agent.cloud.mqtt_client" and r.levelno >= logging.INFO]
    warnings = [r for r in ours if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in warnings] == ["broker connection failed; retrying"]
    assert "refused" in warnings[0].reason.lower() and warnings[0].exc_info is None
    works_again = [r for r in ours if r.getMessage() == "broker connection works again"]
    assert len(works_again) == 1 and works_again[0].failed_attempts >= 5
    assert ours.index(warnings[0]) < ours.index(works_again[0])
