"""A retrying loop's failure is logged once while it lasts, and its end once."""

from __future__ import annotations

import logging

import pytest

from agent.loop_failures import LoopFailures
from agent.store import StoreFullError


def test_a_lasting_failure_is_logged_once_and_its_end_once(caplog: pytest.LogCaptureFixture) -> None:
    failures = LoopFailures(logging.getLogger("kassa.test"), "print queue")
    with caplog.at_level(logging.INFO, logger="kassa.test"):
        for _ in range(5):
            failures.failed(StoreFullError("/state/agent.db: the disk is full"), printer="front")
        failures.succeeded(printer="front")
        failures.succeeded(printer="front")
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "print queue paused while the disk is full; retrying"),
        ("INFO", "print queue works again"),
    ]
    assert caplog.records[0].exc_info is None and caplog.records[0].printer == "front"


def test_a_bug_keeps_its_traceback_and_a_different_failure_is_logged_again(caplog: pytest.LogCaptureFixture) -> None:
    failures = LoopFailures(logging.getLogger("kassa.test"), "outbox drain")
    with caplog.at_level(logging.INFO, logger="kassa.test"):
        for _ in range(3):
            failures.failed(KeyError("seq"))
        failures.failed(StoreFullError("full"))
    assert [r.getMessage() for r in caplog.records] == [
        "outbox drain step failed; retrying",
        "outbox drain paused while the disk is full; retrying",
    ]
    assert caplog.records[0].exc_info is not None and caplog.records[0].levelname == "ERROR"


def test_an_outage_is_logged_once_at_warning_whatever_the_reasons_and_its_end_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failures = LoopFailures(logging.getLogger("kassa.test"), "broker connection")
    with caplog.at_level(logging.INFO, logger="kassa.test"):
        failures.unreachable("[Errno 111] Connection refused", host="broker")
        failures.unreachable("[Errno -2] Name or service not known", host="broker")
        failures.unreachable("[Errno 111] Connection refused", host="broker")
        failures.succeeded(host="broker")
        failures.succeeded(host="broker")
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "broker connection failed; retrying"),
        ("INFO", "broker connection works again"),
    ]
    assert caplog.records[0].reason == "[Errno 111] Connection refused" and caplog.records[0].exc_info is None
    assert caplog.records[1].failed_attempts == 3
