"""The roster over a real Mosquitto: MqttPeer plays the cloud and publishes retained docs."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import wiring
from broker import contract as kc
from broker.launcher import Mosquitto
from drivers.sim.printer import VirtualPrinter
from tests.agent.test_cashiers_support import DEVICE, cashier, control, raw_error, roster, roster_envelope
from tests.support.agent_process import write_agent_config
from tests.support.inprocess import InProcessAgent
from tests.support.mqtt_peer import MqttPeer

UP_ALL = f"kassa/v1/dev/{DEVICE}/up/#"
ANNA = cashier("anna", "1001", ["cashier"], pin="4711")
BEN = cashier("ben", "1002", ["cashier", "refund"], pin="2222")


@pytest.fixture
def cloud(mosquitto: Mosquitto) -> Iterator[MqttPeer]:
    with MqttPeer(mosquitto, "test-cloud") as peer:
        yield peer


def config_for(tmp_path: Path, mosquitto: Mosquitto, extra: str = "") -> Path:
    return write_agent_config(
        tmp_path / "agent", device_id=DEVICE, host=mosquitto.host, port=mosquitto.port, extra=extra
    )


def start_linked(config: Path) -> InProcessAgent:
    running = InProcessAgent(config).start()
    running.wait_until(lambda: running.cloud.mqtt.subscribed, 20, "broker connection")
    return running


def roster_version(agent: InProcessAgent) -> int:
    return agent.agent.component(wiring.CASHIERS).roster.version


def publish(cloud: MqttPeer, version: int, *cashiers: dict) -> None:
    cloud.send(roster_envelope(version, roster(*cashiers)))  # retained, QoS 1


def events(cloud: MqttPeer, until_kind: str, timeout_s: float = 10) -> list[tuple[kc.Event, bytes]]:
    seen = []
    deadline = time.monotonic() + timeout_s
    while True:
        topic, payload, _ = cloud.next_message(max(0.01, deadline - time.monotonic()))
        if topic.endswith("/up/event"):
            parsed = kc.parse_message(topic, payload)
            assert isinstance(parsed, kc.Parsed)
            seen.append((parsed.body, payload))
            if parsed.body.kind == until_kind:  # type: ignore[union-attr]
                return seen


def test_versions_out_of_order_restart_and_offline_login(tmp_path: Path, mosquitto: Mosquitto, cloud: MqttPeer) -> None:
    config = config_for(tmp_path, mosquitto)
    agent = start_linked(config)
    publish(cloud, 3, ANNA)
    publish(cloud, 5, ANNA, BEN)
    publish(cloud, 4, ANNA)
    agent.wait_until(lambda: roster_version(agent) == 5, 10, "roster v5")
    publish(cloud, 6, ANNA, BEN)  # a later doc proves 4 was seen and ignored
    agent.wait_until(lambda: roster_version(agent) == 6, 10, "roster v6")
    assert [c["cashier_id"] for c in control(agent).call("cashiers.list")["cashiers"]] == ["anna", "ben"]
    agent.stop()

    mosquitto.kill()  # the cloud is gone: the cached roster alone must do
    again = InProcessAgent(config).start()
    try:
        listing = control(again).call("cashiers.list")
        assert listing["version"] == 6 and all("pin_hash" not in c for c in listing["cashiers"])
        session = control(again).call("cashier.login", code="1002", pin="2222")
        assert session["cashier_id"] == "ben" and not again.cloud.mqtt.connected
        assert (
            control(again).call(
                "cashier.authorize",
                token=session["token"],
                action="refund_own",
                sale_till_session=session["till_session_id"],
            )["code"]
            == "licence.none"
        )
    finally:
        again.stop()


def test_removed_cashier_is_logged_out_by_that_one_push(tmp_path: Path, mosquitto: Mosquitto, cloud: MqttPeer) -> None:
    agent = start_linked(config_for(tmp_path, mosquitto))
    try:
        publish(cloud, 1, ANNA, BEN)
        agent.wait_until(lambda: roster_version(agent) == 1, 10, "roster v1")
        cloud.subscribe(UP_ALL)
        anna = control(agent).call("cashier.login", code="anna", pin="4711")["token"]
        ben = control(agent).call("cashier.login", code="ben", pin="2222")["token"]
        publish(cloud, 2, BEN, {**ANNA, "cashier_id": "anna2", "operator_code": "1009"})
        agent.wait_until(lambda: roster_version(agent) == 2, 10, "roster v2")
        error = raw_error(agent, "cashier.session", token=anna)
        assert error is not None and error["data"]["code"] == "session.invalid"
        assert control(agent).call("cashier.session", token=ben)["cashier_id"] == "ben"
        seen = events(cloud, "cashier.logout")
        logout = seen[-1][0]
        assert logout.cashier_id == "anna" and logout.details["reason"] == "cashier.removed"
        publish(cloud, 3, {**BEN, "enabled": False})
        agent.wait_until(lambda: roster_version(agent) == 3, 10, "roster v3")
        assert raw_error(agent, "cashier.session", token=ben)["data"]["code"] == "session.invalid"  # type: ignore[index]
        assert events(cloud, "cashier.logout")[-1][0].details["reason"] == "cashier.disabled"
    finally:
        agent.stop()


def test_login_events_reach_the_cloud_without_pins(tmp_path: Path, mosquitto: Mosquitto, cloud: MqttPeer) -> None:
    agent = start_linked(config_for(tmp_path, mosquitto, extra="[cashiers]\nlockout_attempts = 2\n"))
    try:
        publish(cloud, 1, ANNA)
        agent.wait_until(lambda: roster_version(agent) == 1, 10, "roster v1")
        cloud.subscribe(UP_ALL)
        for pin in ("1357", "2468"):
            raw_error(agent, "cashier.login", code="anna", pin=pin)
        seen = events(cloud, "cashier.locked")
        assert [e.kind for e, _ in seen] == ["cashier.login_failed", "cashier.login_failed", "cashier.locked"]
        assert seen[0][0].details == {"reason": "cashier.wrong_pin", "attempts_left": 1}
        payloads = b"".join(p for _, p in seen)
        for secret in (b"1357", b"2468", b"4711", ANNA["pin_hash"].encode()):
            # standing alone: a message id or a timestamp may hold the same four digits by chance
            assert not re.search(rb"(?<![\w-])" + re.escape(secret) + rb"(?![\w-])", payloads), secret
    finally:
        agent.stop()


def test_load_asks_the_broker_for_the_retained_roster(tmp_path: Path, mosquitto: Mosquitto, cloud: MqttPeer) -> None:
    agent = start_linked(config_for(tmp_path, mosquitto))
    try:
        publish(cloud, 4, ANNA)
        agent.wait_until(lambda: roster_version(agent) == 4, 10, "roster v4")
        unchanged = control(agent).call("cashiers.load")
        assert unchanged == {
            "before": 4,
            "after": 4,
            "changed": False,
            "received": True,
            "refused": None,
            "cashiers": 1,
        }

        # a lost cache (e.g. the store restored from a backup): Load gets it back from the broker
        cashiers = agent.agent.component(wiring.CASHIERS)

        def forget() -> None:
            with agent.agent.store.transaction() as conn:
                conn.execute("DELETE FROM applied_state WHERE domain = 'cashiers'")
                conn.execute("DELETE FROM cashier_roster")
            from agent.cashiers.roster import Roster

            cashiers.roster = Roster()

        agent.call(forget)
        loaded = control(agent).call("cashiers.load")
        assert (loaded["before"], loaded["after"], loaded["changed"]) == (0, 4, True)
        # the extra subscription is gone again: a new push is applied (and delivered) once
        applied: list[int] = []
        agent.call(lambda: agent.cloud.inbound.state_listeners.append(lambda d, v: applied.append(v)))
        publish(cloud, 5, ANNA, BEN)
        agent.wait_until(lambda: roster_version(agent) == 5, 10, "roster v5")
        time.sleep(0.3)
        assert applied == [5]
    finally:
        agent.stop()


def test_printed_receipts_trigger_a_rate_limited_version_report(
    tmp_path: Path, mosquitto: Mosquitto, cloud: MqttPeer
) -> None:
    printer = VirtualPrinter(preview_dir=tmp_path / "previews").start()
    extra = (
        "[cashiers]\ncheck_interval_s = 300\n[hardware]\ndiscovery_interval_s = 0\n"
        f'[[printers]]\nname = "front"\nurl = "{printer.url}"\n'
    )
    agent = start_linked(config_for(tmp_path, mosquitto, extra=extra))
    try:
        publish(cloud, 2, ANNA)
        agent.wait_until(lambda: roster_version(agent) == 2, 10, "roster v2")
        cashiers = agent.agent.component(wiring.CASHIERS)
        queue = agent.agent.component(wiring.HARDWARE).queue
        cloud.subscribe(UP_ALL)
        from drivers import ReceiptBuilder

        def print_receipt() -> str:
            return agent.call(
                lambda: queue.submit_document("front", ReceiptBuilder().text("sale").build(), kind="receipt")
            )

        print_receipt()
        agent.wait_until(lambda: cashiers.version_checks == 1, 10, "a version check after the receipt")
        report = cloud.next_parsed(topic_suffix="/up/state").body
        assert isinstance(report, kc.DeviceState) and report.applied_versions[kc.StateDomain.CASHIERS] == 2
        job = print_receipt()  # within check_interval_s: no second report
        agent.wait_until(lambda: queue.get(job).state == "printed", 10, "second receipt printed")
        time.sleep(0.2)
        assert cashiers.version_checks == 1
        agent.call(lambda: agent.agent.config.cashiers.__setattr__("check_interval_s", 0.0))
        print_receipt()
        agent.wait_until(lambda: cashiers.version_checks == 2, 10, "a check after every receipt with interval 0")
        assert json.dumps(control(agent).call("status")["components"]["cashiers"]).count("roster v2") == 1
    finally:
        agent.stop()
        printer.stop()


def test_cloud_command_cashiers_load_is_answered(tmp_path: Path, mosquitto: Mosquitto, cloud: MqttPeer) -> None:
    agent = start_linked(config_for(tmp_path, mosquitto))
    try:
        publish(cloud, 2, ANNA)
        agent.wait_until(lambda: roster_version(agent) == 2, 10, "roster v2")
        cloud.subscribe(UP_ALL)
        cloud.send(kc.down_message(kc.Command(name=kc.CommandName.CASHIERS_LOAD.value), device_id=DEVICE))
        reply = cloud.next_parsed(topic_suffix="/up/reply").body
        assert isinstance(reply, kc.Reply) and reply.ok and reply.result == {"roster_version": 2, "refreshing": True}
    finally:
        agent.stop()
