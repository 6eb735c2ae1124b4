"""Offline login, lockout, sessions and details per point of sale, through the control socket
of a real agent (in this process; no broker needed: the roster comes through inbound)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import wiring
from tests.agent.test_cashiers_support import (
    DEVICE,
    cashier,
    control,
    push_inprocess,
    raw_error,
    roster,
)
from tests.support.agent_process import write_agent_config
from tests.support.inprocess import InProcessAgent

CONFIG = """
[cashiers]
lockout_attempts = 3
lockout_s = 300
session_timeout_s = 3600
"""

ROSTER = roster(
    cashier("anna", "1001", ["cashier"], pin="4711"),
    cashier("ben", "1002", ["cashier"], pin="2222", enabled=False),
    cashier("cleo", "1003", ["cashier"], pin=None),
    cashier(
        "dora",
        "1004",
        ["cashier", "refund"],
        pin="5555",
        details=[("airport", "T-100", "2001", "SU direct"), ("station", "T-200", "2002")],
    ),
    cashier("emil", "1005", ["cashier"], pin="6666", details=[("station", "T-300", "2003")]),
    # the seed's case: one cashier in two airline sessions, its own code in both
    cashier(
        "fred",
        "1006",
        ["cashier"],
        pin="7777",
        details=[("airport", "SU-7", "1006", "Aeroflot SU"), ("harbour", "S7-2", "1006", "S7 Airlines")],
    ),
)


class FakeClock:
    def __init__(self, now: float = 1_900_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def start(config: Path, clock: FakeClock | None = None) -> InProcessAgent:
    running = InProcessAgent(config).start()
    if clock is not None:
        running.call(lambda: setattr(running.agent.component(wiring.CASHIERS), "clock", clock))
    return running


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_agent_config(tmp_path / "agent", device_id=DEVICE, extra=CONFIG)


@pytest.fixture
def agent(config: Path) -> Iterator[InProcessAgent]:
    running = start(config)
    push_inprocess(running, 1, ROSTER)
    try:
        yield running
    finally:
        running.stop()


def refusal(agent: InProcessAgent, method: str, **params: object) -> dict:
    error = raw_error(agent, method, **params)
    assert error is not None, f"{method} was not refused"
    return {"message": error["message"], **error.get("data", {})}


def test_login_with_cashier_code_or_operator_code_then_logout(agent: InProcessAgent) -> None:
    client = control(agent)
    by_id = client.call("cashier.login", code="anna", pin="4711")
    by_operator = client.call("cashier.login", code="1001", pin="4711")
    assert by_id["cashier_id"] == by_operator["cashier_id"] == "anna"
    assert by_id["token"] != by_operator["token"] and by_id["till_session_id"] != by_operator["till_session_id"]
    assert by_id["roles"] == ["cashier"] and by_id["actions"] == ["sell"]
    assert by_id["operator_code"] == "1001" and by_id["terminal_id"] is None
    session = client.call("cashier.session", token=by_id["token"])
    assert session["till_session_id"] == by_id["till_session_id"] and "token" not in session
    assert client.call("cashier.logout", token=by_id["token"])["ended"] is True
    assert refusal(agent, "cashier.session", token=by_id["token"])["code"] == "session.invalid"
    assert client.call("cashier.session", token=by_operator["token"])["cashier_id"] == "anna"


@pytest.mark.parametrize(
    ("code", "pin", "expected"),
    [
        ("nobody", "1234", "cashier.unknown"),
        ("ben", "2222", "cashier.disabled"),
        ("1003", "1234", "cashier.no_pin"),
        ("anna", "0000", "cashier.wrong_pin"),
    ],
)
def test_refused_logins_have_stable_codes(agent: InProcessAgent, code: str, pin: str, expected: str) -> None:
    refused = refusal(agent, "cashier.login", code=code, pin=pin)
    assert refused["code"] == expected
    if expected == "cashier.wrong_pin":
        assert refused["attempts_left"] == 2 and "2 attempt(s) left" in refused["message"]


def test_no_roster_yet_is_not_allowed(config: Path) -> None:
    running = start(config)
    try:
        refused = refusal(running, "cashier.login", code="anna", pin="4711")
        assert refused["code"] == "cashier.not_allowed" and "Load" in refused["message"]
    finally:
        running.stop()


def test_lockout_survives_restart_and_expires_on_time(config: Path) -> None:
    clock = FakeClock()
    running = start(config, clock)
    push_inprocess(running, 1, ROSTER)
    codes = [refusal(running, "cashier.login", code="anna", pin="9999")["code"] for _ in range(3)]
    assert codes == ["cashier.wrong_pin", "cashier.wrong_pin", "cashier.locked"]
    # locked: even the right PIN is refused, without computing a hash
    assert refusal(running, "cashier.login", code="anna", pin="4711")["code"] == "cashier.locked"
    running.stop()

    running = start(config, clock)  # a restart does not reset the lock
    try:
        locked = refusal(running, "cashier.login", code="1001", pin="4711")
        assert locked["code"] == "cashier.locked" and locked["locked_until"]
        assert "anna" in control(running).call("status")["components"]["cashiers"]["locked"]
        clock.now += 299
        assert refusal(running, "cashier.login", code="anna", pin="4711")["code"] == "cashier.locked"
        clock.now += 2
        assert control(running).call("cashier.login", code="anna", pin="4711")["cashier_id"] == "anna"
        # a successful login reset the counter: a new series of 3 starts
        assert refusal(running, "cashier.login", code="anna", pin="0000")["attempts_left"] == 2
    finally:
        running.stop()


def test_session_survives_restart_and_ends_when_idle(config: Path) -> None:
    clock = FakeClock()
    running = start(config, clock)
    push_inprocess(running, 1, ROSTER)
    token = control(running).call("cashier.login", code="anna", pin="4711")["token"]
    running.stop()

    running = start(config, clock)
    try:
        client = control(running)
        assert client.call("cashier.session", token=token)["cashier_id"] == "anna"
        assert client.call("cashiers.list")["version"] == 1, "the roster cache survived the restart"
        clock.now += 3000
        assert (
            client.call("cashier.authorize", token=token, action="no_sale")["code"] == "permission.denied"
        )  # used: idle clock restarts
        clock.now += 3000
        assert client.call("cashier.session", token=token)["cashier_id"] == "anna"
        clock.now += 3601
        assert refusal(running, "cashier.session", token=token)["code"] == "session.expired"
        assert refusal(running, "cashier.session", token=token)["code"] == "session.invalid"
    finally:
        running.stop()


def test_details_per_point_of_sale(agent: InProcessAgent) -> None:
    client = control(agent)
    ambiguous = refusal(agent, "cashier.login", code="dora", pin="5555")
    assert ambiguous["code"] == "cashier.point_of_sale" and ambiguous["points_of_sale"] == ["airport", "station"]
    assert "airport, station" in ambiguous["message"]
    session = client.call("cashier.login", code="dora", pin="5555", point_of_sale="station")
    assert (session["point_of_sale"], session["terminal_id"], session["operator_code"]) == ("station", "T-200", "2002")
    assert session["session_label"] is None  # a set without a label
    grant = client.call("cashier.authorize", token=session["token"], action="no_sale")
    assert grant["allowed"] is False  # dora has no no_sale role; the details still belong to the session:
    assert client.call("cashier.session", token=session["token"])["terminal_id"] == "T-200"
    wrong = refusal(agent, "cashier.login", code="dora", pin="5555", point_of_sale="harbour")
    assert wrong["code"] == "cashier.point_of_sale" and wrong["points_of_sale"] == ["airport", "station"]
    only = client.call("cashier.login", code="emil", pin="6666")  # one set of details: no choice needed
    assert (only["point_of_sale"], only["terminal_id"], only["operator_code"]) == ("station", "T-300", "2003")


def test_one_operator_code_in_two_airline_sessions(agent: InProcessAgent) -> None:
    client = control(agent)
    chosen = {}
    for pos in ("airport", "harbour"):
        session = client.call("cashier.login", code="1006", pin="7777", point_of_sale=pos)
        chosen[pos] = (session["terminal_id"], session["operator_code"], session["session_label"])
        assert client.call("cashier.session", token=session["token"])["session_label"] == session["session_label"]
    assert chosen == {"airport": ("SU-7", "1006", "Aeroflot SU"), "harbour": ("S7-2", "1006", "S7 Airlines")}
    listed = {c["cashier_id"]: c for c in client.call("cashiers.list")["cashiers"]}
    assert listed["fred"]["details"][0] == {
        "point_of_sale": "airport",
        "terminal_id": "SU-7",
        "operator_code": "1006",
        "session_label": "Aeroflot SU",
    }
    assert "session_label" not in listed["dora"]["details"][1]  # absent, not null: as older rosters had it


def test_terminal_point_of_sale_is_the_default(tmp_path: Path) -> None:
    config = write_agent_config(
        tmp_path / "agent", device_id=DEVICE, extra=CONFIG + '\n[site]\npoint_of_sale = "airport"\n'
    )
    running = start(config)
    try:
        push_inprocess(running, 1, ROSTER)
        session = control(running).call("cashier.login", code="dora", pin="5555")
        assert (session["point_of_sale"], session["terminal_id"], session["session_label"]) == (
            "airport",
            "T-100",
            "SU direct",
        )
    finally:
        running.stop()


def test_no_pin_or_hash_or_token_in_logs_or_events(agent: InProcessAgent, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = control(agent)
    refusal(agent, "cashier.login", code="anna", pin="8642")
    token = client.call("cashier.login", code="anna", pin="4711")["token"]
    client.call("cashier.logout", token=token)
    payloads = [
        bytes(row[0]).decode()
        for row in agent.agent.store.read().execute("SELECT payload FROM outbox WHERE type = 'up.event'")
    ]
    kinds = [json.loads(p)["body"]["kind"] for p in payloads]
    assert kinds == ["cashier.login_failed", "cashier.login", "cashier.logout"]
    secrets = ["8642", "4711", token, ROSTER["cashiers"][0]["pin_hash"]]
    everything = "\n".join(payloads) + "\n".join(
        r.getMessage() + json.dumps(r.__dict__, default=str) for r in caplog.records
    )
    everything += "\n".join(agent.agent.log_buffer.recent(1000))
    for secret in secrets:
        # A PIN is four digits: standing alone, not inside a thread id, a pid or a UUID, which
        # may hold the same digits by chance.
        assert not re.search(rf"(?<![\w-]){re.escape(secret)}(?![\w-])", everything), secret
