from __future__ import annotations

import io
import json
import logging
import os

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


def test_under_the_journal_each_line_carries_its_syslog_priority(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """systemd sets JOURNAL_STREAM to our stderr's device:inode; lines then start with <N>
    (SyslogLevelPrefix=yes in the units), every line of a traceback too."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_kassa", False)]:
        root.removeHandler(handler)
    with open(tmp_path / "journal", "w+") as journal:
        stat = os.fstat(journal.fileno())
        monkeypatch.setattr("sys.stderr", journal)
        monkeypatch.setenv("JOURNAL_STREAM", f"{stat.st_dev}:{stat.st_ino}")
        setup_logging("info", "text")
        log = logging.getLogger("kassa.test")
        log.info("agent running")
        log.warning("printer offline")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("step failed")
        monkeypatch.setenv("JOURNAL_STREAM", "1:2")  # stderr is not the journal (redirected)
        setup_logging("info", "text")
        log.error("plain")
        journal.flush()
        lines = (tmp_path / "journal").read_text().splitlines()
    for handler in [h for h in root.handlers if getattr(h, "_kassa", False)]:
        root.removeHandler(handler)
    assert lines[0].startswith("<6>") and " info kassa.test agent running" in lines[0]
    assert lines[1].startswith("<4>") and lines[2].startswith("<3>")
    traceback = lines[3:-1]
    assert traceback and all(line.startswith("<3>") for line in traceback)
    assert any("ValueError: boom" in line for line in traceback)
    assert not lines[-1].startswith("<") and " error kassa.test plain" in lines[-1]
