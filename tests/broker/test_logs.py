from __future__ import annotations

import io
import json
import logging
import os

from broker.logs import RepeatedLog, setup_logging


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


def test_a_repeated_line_is_logged_first_then_summarised_then_ended(caplog) -> None:  # type: ignore[no-untyped-def]
    now = [1000.0]
    repeated = RepeatedLog(logging.getLogger("kassa.test"), summary_every_s=300, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="kassa.test"):
        for _ in range(20):  # every 15 s for 5 minutes
            repeated.occurred(logging.WARNING, "licence sweep skipped", key="no_signer", reason="no_signer")
            now[0] += 15
        repeated.occurred(logging.WARNING, "licence sweep skipped", key="no_signer", reason="no_signer")  # 300 s on
        repeated.occurred(logging.WARNING, "licence sweep skipped", key="no_signer", reason="no_signer")
        repeated.occurred(logging.WARNING, "licence sweep skipped", key="db_locked", reason="db_locked")  # new reason
        now[0] += 30
        repeated.ended(logging.INFO, "licence sweeps run again")
        repeated.ended(logging.INFO, "licence sweeps run again")  # not active: logged plainly
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert lines == [
        ("WARNING", "licence sweep skipped"),
        ("WARNING", "licence sweep skipped (repeated 20 times in 300 s)"),
        ("WARNING", "licence sweep skipped"),
        ("INFO", "licence sweeps run again"),
        ("INFO", "licence sweeps run again"),
    ]
    assert caplog.records[1].repeats == 21 and caplog.records[2].reason == "db_locked"
    assert caplog.records[3].repeats == 1 and caplog.records[3].lasted_s == 30.0
    assert not hasattr(caplog.records[4], "repeats")


def test_uvicorns_colour_copy_of_the_message_is_not_a_field() -> None:
    log, stream = _capture("text")
    log.info("Started server process [%d]", 42, extra={"color_message": "Started server process [\x1b[36m%d\x1b[0m]"})
    line = stream.getvalue().strip()
    assert line.endswith(" info kassa.test Started server process [42]") and "\x1b" not in line
