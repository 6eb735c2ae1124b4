"""What the cloud pushes reaches the agent: versioned state, commands once, garbage dropped."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker import contract as kc
from broker.launcher import Mosquitto
from tests.support.agent_process import write_agent_config
from tests.support.inprocess import InProcessAgent
from tests.support.mqtt_peer import MqttPeer

DEVICE = "pos-0001"
# Every up topic: a reply or report may travel alone or inside an up/batch (MqttPeer unpacks it).
UP_ALL = f"kassa/v1/dev/{DEVICE}/up/#"


def state_doc(version: int, marker: str) -> kc.Envelope:
    body = kc.StateDoc(
        domain=kc.StateDomain.CONFIG, version=version, doc={"marker": marker}, issued_at=datetime.now(UTC)
    )
    return kc.down_message(body, device_id=DEVICE)


@pytest.fixture
def agent(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[InProcessAgent]:
    config = write_agent_config(tmp_path / "agent", device_id=DEVICE, host=mosquitto.host, port=mosquitto.port)
    running = InProcessAgent(config).start()
    running.wait_until(lambda: running.cloud.mqtt.subscribed, 20, "broker connection")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def cloud(mosquitto: Mosquitto) -> Iterator[MqttPeer]:
    with MqttPeer(mosquitto, "test-cloud") as peer:
        yield peer


def test_state_versions_3_5_4_apply_5_and_survive_restart(
    tmp_path: Path, mosquitto: Mosquitto, cloud: MqttPeer
) -> None:
    config = write_agent_config(tmp_path / "agent", device_id=DEVICE, host=mosquitto.host, port=mosquitto.port)
    agent = InProcessAgent(config).start()
    applied: list[int] = []
    agent.call(lambda: agent.cloud.inbound.state_listeners.append(lambda domain, version: applied.append(version)))
    agent.wait_until(lambda: agent.cloud.mqtt.subscribed, 20, "connected")
    for version, marker in ((3, "three"), (5, "five"), (4, "four")):
        cloud.send(state_doc(version, marker))
    agent.wait_until(lambda: agent.cloud.inbound.rejections.total() == 0 and applied == [3, 5], 10, "3 and 5 applied")
    # 4 arrives after 5 and must be ignored: wait until the agent has seen it (a later doc)
    cloud.send(state_doc(6, "six"))
    agent.wait_until(lambda: applied == [3, 5, 6], 10, "6 applied after 4 was ignored")
    assert agent.cloud.inbound.applied_doc("config") == (6, {"marker": "six"})
    agent.stop()

    # restart: the retained doc (6) is redelivered and the persisted version keeps it from re-applying
    again = InProcessAgent(config).start()
    reapplied: list[int] = []
    again.call(lambda: again.cloud.inbound.state_listeners.append(lambda d, v: reapplied.append(v)))
    again.wait_until(lambda: again.cloud.mqtt.subscribed, 20, "connected")
    assert again.cloud.inbound.applied_doc("config") == (6, {"marker": "six"})
    cloud.send(state_doc(5, "five again"))
    cloud.send(state_doc(7, "seven"))
    again.wait_until(lambda: reapplied == [7], 10, "only 7 applied after restart")
    again.stop()


def test_device_reports_its_state_on_connect_and_after_each_push(
    tmp_path: Path, mosquitto: Mosquitto, cloud: MqttPeer
) -> None:
    cloud.subscribe(UP_ALL)
    config = write_agent_config(tmp_path / "agent", device_id=DEVICE, host=mosquitto.host, port=mosquitto.port)
    agent = InProcessAgent(config).start()
    try:
        first = cloud.next_parsed(topic_suffix="/up/state").body
        assert isinstance(first, kc.DeviceState) and first.applied_versions == {} and first.software_version
        cloud.send(state_doc(2, "two"))
        second = cloud.next_parsed(topic_suffix="/up/state").body
        assert isinstance(second, kc.DeviceState) and second.applied_versions == {kc.StateDomain.CONFIG: 2}
    finally:
        agent.stop()


def test_command_delivered_twice_is_applied_once_and_answered_twice(agent: InProcessAgent, cloud: MqttPeer) -> None:
    calls: list[dict] = []

    def count(args: dict) -> dict:
        calls.append(args)
        return {"count": len(calls)}

    agent.call(lambda: agent.cloud.inbound.on_command("test.count", count))
    cloud.subscribe(UP_ALL)
    command = kc.down_message(kc.Command(name="test.count", args={"n": 1}), device_id=DEVICE)
    cloud.send(command)
    first = cloud.next_parsed(topic_suffix="/up/reply")
    cloud.send(command)  # redelivery (same message id)
    second = cloud.next_parsed(topic_suffix="/up/reply")
    assert len(calls) == 1
    assert first.envelope.correlation_id == second.envelope.correlation_id == command.id
    assert first.envelope.id == second.envelope.id, "the very same reply, not a new one"
    assert first.body == second.body == kc.Reply(ok=True, result={"count": 1})


def test_unknown_and_expired_commands_get_error_replies(agent: InProcessAgent, cloud: MqttPeer) -> None:
    cloud.subscribe(UP_ALL)
    cloud.send(kc.down_message(kc.Command(name="no.such.thing"), device_id=DEVICE))
    reply = cloud.next_parsed(topic_suffix="/up/reply").body
    assert (
        isinstance(reply, kc.Reply)
        and not reply.ok
        and reply.error is not None
        and reply.error.code == "unknown_command"
    )
    expired = kc.Command(name="ping", expires_at=datetime(2020, 1, 1, tzinfo=UTC))
    cloud.send(kc.down_message(expired, device_id=DEVICE))
    reply = cloud.next_parsed(topic_suffix="/up/reply").body
    assert isinstance(reply, kc.Reply) and reply.error is not None and reply.error.code == "expired"
    cloud.send(kc.down_message(kc.Command(name="ping"), device_id=DEVICE))
    reply = cloud.next_parsed(topic_suffix="/up/reply").body
    assert isinstance(reply, kc.Reply) and reply.ok and reply.result is not None and reply.result["pong"] is True


def test_wrong_device_in_envelope_is_dropped(agent: InProcessAgent, cloud: MqttPeer) -> None:
    other = state_doc(9, "not yours").model_copy(update={"device_id": "pos-9999"})
    cloud.publish(kc.state_topic(DEVICE, kc.StateDomain.CONFIG), other.model_dump_json().encode())
    agent.wait_until(lambda: agent.cloud.inbound.rejections["wrong_device"] == 1, 10, "wrong_device counted")
    assert agent.cloud.inbound.applied_doc("config") is None


TAILS = st.sampled_from(
    [
        "down/ack",
        "down/cmd",
        "down/state/cashiers",
        "down/state/config",
        "down/state/licence",
        "down/state/bogus",
        "down/other",
    ]
)
PAYLOADS = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(str.encode),
    st.dictionaries(st.text(max_size=8), st.one_of(st.integers(), st.text(max_size=8), st.none()), max_size=6).map(
        lambda d: repr(d).encode()
    ),
    st.just(b'{"v": 1, "type": "down.ack", "body": {}}'),
    st.just(b"\xff\xfe"),
)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(st.tuples(TAILS, PAYLOADS), min_size=5, max_size=25))
def test_garbage_on_every_inbound_topic_is_counted_and_valid_messages_still_flow(
    agent: InProcessAgent, cloud: MqttPeer, batch: list[tuple[str, bytes]]
) -> None:
    before = agent.cloud.inbound.rejections.total()
    for tail, payload in batch:
        cloud.publish(f"kassa/v1/dev/{DEVICE}/{tail}", payload)
    agent.wait_until(
        lambda: agent.cloud.inbound.rejections.total() - before == len(batch), 20, f"{len(batch)} rejections counted"
    )
    # the loop is still alive: a valid doc right after the garbage is applied
    current = (agent.cloud.inbound.applied_doc("cashiers") or (0, {}))[0]
    valid = kc.down_message(
        kc.StateDoc(domain=kc.StateDomain.CASHIERS, version=current + 1, doc={"ok": True}, issued_at=datetime.now(UTC)),
        device_id=DEVICE,
    )
    cloud.send(valid)
    agent.wait_until(
        lambda: (agent.cloud.inbound.applied_doc("cashiers") or (0, {}))[0] == current + 1, 10, "valid doc applied"
    )
