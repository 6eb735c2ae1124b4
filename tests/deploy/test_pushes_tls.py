"""The push publisher on the production broker: mutual TLS as kassa-cloud on the cloud
listener, the production ACL and its Receive Maximum of 20; a device logged in with its own
certificate gets its retained document and its command, and nothing of another device's."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy.orm import Session

from broker import contract as kc
from cloud_api.pushes import commands, desired_state
from cloud_api.pushes.mqtt import BrokerOptions
from cloud_api.pushes.publisher import PublisherOptions, PushPublisher
from tests.cloud.pushes_support import push_database, wait_for
from tests.deploy.tls_broker import NOT_AUTHORIZED, Peer, ProductionBroker


def test_publisher_pushes_over_tls_with_the_production_acl(production_broker: ProductionBroker, tmp_path: Path) -> None:
    pki = production_broker.pki
    with push_database("sqlite", tmp_path) as db:
        db.add_devices("pos-a", "pos-b", *(f"tls-bulk-{n:03d}" for n in range(200)))
        with Session(db.engine) as session, session.begin():
            desired_state.set_docs(session, "config", {"pos-a": {"for": "pos-a"}, "pos-b": {"for": "pos-b"}})
            # more than the broker's Receive Maximum in one wave
            desired_state.set_docs(session, "cashiers", {f"tls-bulk-{n:03d}": {"n": n} for n in range(200)})
            command_id = commands.create_command(
                session, "pos-a", "ping", {}, expires_in=timedelta(minutes=5)
            ).command_id
        broker = BrokerOptions(
            "127.0.0.1",
            production_broker.cloud_port,
            "kassa-pushes-tls",
            ca_file=str(pki / "cloud-ca.crt"),
            cert_file=str(pki / "clients" / "kassa-cloud.crt"),
            key_file=str(pki / "clients" / "kassa-cloud.key"),
        )
        device = Peer(production_broker.device_port, pki, "pos-a")
        assert not device.connect().is_failure
        # Subscribed before the publisher starts (a command is not retained), as widely as the
        # devices' listener allows (its own down/ topics; kassa/v1/dev/# is refused): the ACL,
        # not the filter, must keep other devices' documents away.
        assert [code.value for code in device.subscribe("kassa/v1/dev/#")] == [NOT_AUTHORIZED]
        device.subscribe("kassa/v1/dev/pos-a/down/#")
        publisher = PushPublisher(db.engine, broker, options=PublisherOptions(poll_s=0.05)).start()
        try:
            wait_for(lambda: db.pending() == 0, "every document published through the production broker", 30)
            assert db.command(command_id).attempts == 1
            assert publisher.stats().connection_resets == 0 and publisher.stats().refused == 0
            got = {parsed.type: parsed for parsed in (next_parsed(device), next_parsed(device))}
            # The broker keeps the order of one subscriber's messages: once this later doc has
            # arrived, anything of pos-b or the bulk devices would have arrived before it.
            with Session(db.engine) as session, session.begin():
                desired_state.set_doc(session, "pos-a", "config", {"for": "pos-a", "n": 2})
            assert next_parsed(device).body.version == 2  # type: ignore[union-attr]
            assert device.pending() == [], "nothing of pos-b or the bulk devices reached pos-a"
            device.close()
            returning = Peer(production_broker.device_port, pki, "pos-a")
            assert not returning.connect().is_failure
            returning.subscribe("kassa/v1/dev/pos-a/down/#")
            retained = returning.next_message()
            returning.close()
        finally:
            device.close()
            publisher.stop()
    state = got[kc.MessageType.STATE]
    assert state.envelope.device_id == "pos-a" and state.body.doc == {"for": "pos-a"}  # type: ignore[union-attr]
    assert got[kc.MessageType.COMMAND].envelope.id == command_id
    assert retained.retain and retained.topic == "kassa/v1/dev/pos-a/down/state/config"
    assert next_parsed_payload(retained).body.doc == {"for": "pos-a", "n": 2}  # type: ignore[union-attr]


def next_parsed(peer: Peer) -> kc.Parsed:
    return next_parsed_payload(peer.next_message())


def next_parsed_payload(message) -> kc.Parsed:
    parsed = kc.parse_message(message.topic, bytes(message.payload))
    assert isinstance(parsed, kc.Parsed), parsed
    return parsed
