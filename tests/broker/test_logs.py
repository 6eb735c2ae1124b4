from __future__ import annotations

import io
import json
import logging

from broker.logs import setup_logging


def _capture(fmt: str) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_kassa", False)]:
        root.removeHandler(handler)
    setup_logging("info", fmt, stream=stream)
    return logging.getLogger("kassa.test"), stream


def test_text_lines_carry_fields_and_mask_secrets() -> None:
    log, stream = _capture("text")
    log.info("cashier login", extra={"cashier": "c-17", "pin": "1234", "api_token": "tok-abc", "note": "two words"})
    line = stream.getvalue().strip()
    assert " info kassa.test cashier login " in line
    assert "cashier=c-17" in line and 'note="two words"' in line
    assert "1234" not in line and "tok-abc" not in line
    assert "pin=***" in line


def test_json_lines_and_quiet_debug() -> None:
    log, stream = _capture("json")
    log.debug("chatter")
    log.warning("printer offline", extra={"printer": "front", "password": "hunter2"})
    lines = stream.getvalue().strip().splitlines()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert event["level"] == "warning" and event["printer"] == "front" and event["password"] == "***"


def test_default_handler_follows_stderr_when_it_is_swapped(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The handler writes to sys.stderr as it is now: a stream swapped out and closed since
    setup (pytest's capture does that between tests) must not turn records into 'Logging error'."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_kassa", False)]:
        root.removeHandler(handler)
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stderr", first)
    setup_logging("info", "text")
    monkeypatch.setattr("sys.stderr", second)
    first.close()
    monkeypatch.setattr(logging, "raiseExceptions", True)
    logging.getLogger("kassa.test").warning("printer offline")
    assert " warning kassa.test printer offline" in second.getvalue() and "Logging error" not in second.getvalue()
    for handler in [h for h in root.handlers if getattr(h, "_kassa", False)]:
        root.removeHandler(handler)
