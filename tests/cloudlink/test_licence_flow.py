"""The licence flow over a real Mosquitto, MqttPeer playing the cloud: key, grant, release, reconnect."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent import wiring
from agent.ctl_client import ControlClient
from broker import contract as kc
from broker.contract import licence as kl
from broker.contract.signing import load_public_key, public_key_fingerprint
from broker.launcher import Mosquitto
from tests.support.agent_process import write_agent_config
from tests.support.inprocess import InProcessAgent
from tests.support.licence import lease_token, licence_doc, release_command, trust_section
from tests.support.mqtt_peer import MqttPeer

DEVICE = "pos-0001"
UP_ALL = f"kassa/v1/dev/{DEVICE}/up/#"


@pytest.fixture
def cloud(mosquitto: Mosquitto) -> Iterator[MqttPeer]:
    with MqttPeer(mosquitto, "test-cloud") as peer:
        peer.subscribe(UP_ALL)
        yield peer


@pytest.fixture
def agent(tmp_path: Path, mosquitto: Mosquitto, cloud: MqttPeer) -> Iterator[InProcessAgent]:
    # A short ack timeout: this cloud never acks, so a report sent before a test's peer
    # subscribed (after a broker restart) comes again soon.
    config = write_agent_config(
        tmp_path / "agent",
        device_id=DEVICE,
        host=mosquitto.host,
        port=mosquitto.port,
        ack_timeout_s=3.0,
        extra=trust_section(),
    )
    running = InProcessAgent(config).start()
    running.wait_until(lambda: running.cloud.mqtt.subscribed, 20, "broker connection")
    try:
        yield running
    finally:
        running.stop()


def licence_of(agent: InProcessAgent) -> Any:
    return agent.agent.component(wiring.LICENCE)


def check(agent: InProcessAgent) -> dict[str, Any]:
    """The sale verdict through the control socket, as a technician (or the POS) sees it."""
    return ControlClient(agent.config.paths.control_socket).call("licence.check")


def next_up(cloud: MqttPeer, wanted: Any, timeout_s: float = 10) -> kc.Envelope:
    """The next up message for which ``wanted(envelope)`` is true; others are skipped."""
    while True:
        parsed = cloud.next_parsed(timeout_s)
        if isinstance(parsed, kc.Parsed) and wanted(parsed.envelope):
            return parsed.envelope


def next_licence(cloud: MqttPeer, kind: str, timeout_s: float = 10) -> kc.Envelope:
    return next_up(cloud, lambda e: e.type == kc.MessageType.LICENCE and e.body.kind == kind, timeout_s)


def next_reply(cloud: MqttPeer, correlation_id: uuid.UUID) -> kc.Reply:
    return next_up(cloud, lambda e: e.type == kc.MessageType.REPLY and e.correlation_id == correlation_id).body  # type: ignore[return-value]


def test_key_grant_release_and_redelivery(agent: InProcessAgent, cloud: MqttPeer) -> None:
    licence = licence_of(agent)
    assert check(agent)["code"] == "licence.none"
    key = kl.new_licence_key()
    ControlClient(agent.config.paths.control_socket).call("licence.enter", key=kc.format_licence_key(key))
    bind = next_licence(cloud, "bind_request").body
    assert bind.licence_key == key
    device_key = public_key_fingerprint(load_public_key(bind.device_public_key))
    assert device_key == licence.device_key_fingerprint

    # the cloud grants: a retained licence document with the lease
    cloud.send(
        licence_doc(
            1,
            [lease_token(DEVICE, device_key, licence_id="LIC-1", epoch=1, issued_at=agent.call(licence.wall))],
            DEVICE,
        )
    )
    report = next_licence(cloud, "lease_report").body
    assert [(h.licence_id, h.epoch) for h in report.leases] == [("LIC-1", 1)]
    agent.wait_until(lambda: check(agent)["ok"], 10, "sales allowed")
    assert agent.call(licence.status)["bind_request"]["outcome"] == "granted"

    # the cloud orders the release: reply with a receipt, an up/licence receipt, sales stop
    command = release_command("LIC-1", 1, DEVICE)
    cloud.send(command)
    # the receipt is queued with the release, before the reply: both arrive, in that order
    receipt = next_licence(cloud, "release_receipt").body
    reply = next_reply(cloud, command.id)
    assert reply.ok
    claims = kl.read_release(reply.result["receipt"], bind.device_public_key)
    assert (claims.licence_id, claims.epoch, claims.device_id) == ("LIC-1", 1, DEVICE)
    assert (receipt.licence_id, receipt.epoch, receipt.receipt) == ("LIC-1", 1, reply.result["receipt"])
    verdict = check(agent)
    assert (verdict["ok"], verdict["code"]) == (False, "licence.released")

    # the same command redelivered: the very same reply
    cloud.send(command)
    assert next_reply(cloud, command.id) == reply


def test_newer_doc_without_the_lease_releases_it_and_reconnect_reports_tombstones(
    agent: InProcessAgent, mosquitto: Mosquitto, cloud: MqttPeer
) -> None:
    licence = licence_of(agent)
    now = agent.call(licence.wall)
    key = licence.device_key_fingerprint
    lease_a = lease_token(DEVICE, key, licence_id="LIC-A", epoch=2, issued_at=now)
    lease_b = lease_token(DEVICE, key, licence_id="LIC-B", epoch=1, issued_at=now)
    cloud.send(licence_doc(1, [lease_a, lease_b], DEVICE))
    agent.wait_until(lambda: len(agent.call(licence.status)["held"]) == 2, 10, "two leases held")
    cloud.send(licence_doc(2, [lease_b], DEVICE))
    agent.wait_until(lambda: agent.call(licence.status)["released"] == ["LIC-A"], 10, "LIC-A released")
    assert check(agent)["licence_id"] == "LIC-B"
    while True:  # the report after document 2 carries the tombstone
        report = next_licence(cloud, "lease_report").body
        if report.tombstones:
            break
    assert [(t.licence_id, t.epoch) for t in report.tombstones] == [("LIC-A", 2)]
    assert kl.read_release(report.tombstones[0].receipt, licence.device_public_key).epoch == 2

    # reconnect: the device reports its leases and the unconfirmed tombstone again
    before = agent.call(licence.outbox.last_seq)
    mosquitto.restart(hard=True)
    with MqttPeer(mosquitto, "test-cloud-2") as again:
        again.subscribe(UP_ALL)
        # unacked messages are resent too (this cloud never acks): look for the new report
        report = next_up(
            again,
            lambda e: e.type == kc.MessageType.LICENCE and e.seq > before and e.body.kind == "lease_report",
            timeout_s=30,
        ).body
        assert [h.licence_id for h in report.leases] == ["LIC-B"]
        assert [(t.licence_id, t.epoch) for t in report.tombstones] == [("LIC-A", 2)]


def test_refusal_reaches_the_control_socket(agent: InProcessAgent, cloud: MqttPeer) -> None:
    licence = licence_of(agent)
    token = lease_token("pos-9999", licence.device_key_fingerprint, issued_at=agent.call(licence.wall))
    cloud.send(licence_doc(1, [token], DEVICE))
    agent.wait_until(lambda: check(agent)["code"] == "licence.wrong_device", 10, "refusal")
    assert "another terminal" in check(agent)["message"]
