"""broker/production/mosquitto.conf and its ACLs on a real Mosquitto, with certificates from make-certs.sh.

Devices log in on the device listener with a certificate whose CN is their id; the cloud logs in
on the cloud listener as kassa-cloud. Order of delivery between one publisher and one subscriber
is kept by the broker, so "the forbidden message was not delivered" is checked by sending an
allowed one right after it and seeing that the allowed one arrives first and alone.
"""

from __future__ import annotations

import time
from pathlib import Path

from broker import contract as kc
from tests.deploy.paired import tls_agent_config, tls_worker, wait_for
from tests.deploy.tls_broker import NOT_AUTHORIZED, PRODUCTION, Peer, ProductionBroker, dev, start_production_broker
from tests.support.agent_process import AgentProcess

INGEST = kc.CLOUD_INGEST_SUBSCRIPTION  # $share/ingest/kassa/v1/dev/+/up/#
STATUS = kc.CLOUD_STATUS_SUBSCRIPTION  # kassa/v1/dev/+/status
SUCCESS_CODES = {0, 16}  # success, or "no matching subscribers" (still accepted by the ACL)


def device(pb: ProductionBroker, peers: list[Peer], cn: str, **kwargs: object) -> Peer:
    peer = Peer(pb.device_port, pb.pki, cn, **kwargs)  # type: ignore[arg-type]
    peers.append(peer)
    rc = peer.connect()
    assert not rc.is_failure, f"{cn} refused: {rc}"
    return peer


def cloud(pb: ProductionBroker, peers: list[Peer], client_id: str = "kassa-ingest-w1") -> Peer:
    peer = Peer(pb.cloud_port, pb.pki, "kassa-cloud", client_id=client_id)
    peers.append(peer)
    rc = peer.connect()
    assert not rc.is_failure, f"kassa-cloud refused: {rc}"
    return peer


def granted(codes: list) -> bool:
    return all(code.value == 1 for code in codes)  # "Granted QoS 1"


def test_device_up_and_status_reach_the_cloud_through_the_shared_subscription(
    production_broker: ProductionBroker, peers: list[Peer]
) -> None:
    worker = cloud(production_broker, peers)
    assert granted(worker.subscribe(INGEST)), "the cloud may subscribe to the shared ingest filter"
    assert granted(worker.subscribe(STATUS))
    a = device(production_broker, peers, "pos-a")
    for kind in ("sale", "refund", "licence", "state", "reply", "event"):
        assert a.publish(dev("pos-a", f"up/{kind}"), kind.encode()).value == 0
        msg = worker.next_message()
        assert (msg.topic, msg.payload) == (dev("pos-a", f"up/{kind}"), kind.encode())
    assert a.publish(dev("pos-a", "status"), b"online", retain=True).value == 0
    msg = worker.next_message()
    assert (msg.topic, msg.payload) == (dev("pos-a", "status"), b"online")


def test_shared_subscription_spreads_one_devices_messages_over_workers(
    production_broker: ProductionBroker, peers: list[Peer]
) -> None:
    workers = [cloud(production_broker, peers, f"kassa-ingest-w{i}") for i in (1, 2)]
    for worker in workers:
        assert granted(worker.subscribe(INGEST))
    a = device(production_broker, peers, "pos-a")
    for n in range(10):
        assert a.publish(dev("pos-a", "up/sale"), str(n).encode()).value == 0
    time.sleep(0.3)
    got = [workers[0].pending(), workers[1].pending()]
    assert sorted(int(p) for w in got for _t, p in w) == list(range(10)), "each message to exactly one worker"
    assert got[0] and got[1], "Mosquitto hands a shared subscription's messages round-robin"


def test_device_gets_its_own_down_messages_and_retained_state(
    production_broker: ProductionBroker, peers: list[Peer]
) -> None:
    worker = cloud(production_broker, peers)
    for device_id in ("pos-a", "pos-b"):
        rc = worker.publish(dev(device_id, "down/state/cashiers"), f"roster of {device_id}".encode(), retain=True)
        assert rc.value in SUCCESS_CODES, rc
    a = device(production_broker, peers, "pos-a")
    assert granted(a.subscribe(dev("pos-a", "down/#")))
    msg = a.next_message()
    assert (msg.topic, msg.payload, msg.retain) == (dev("pos-a", "down/state/cashiers"), b"roster of pos-a", True)
    for rest in ("down/ack", "down/cmd", "down/state/config"):
        assert worker.publish(dev("pos-a", rest), rest.encode()).value == 0
        msg = a.next_message()
        assert (msg.topic, msg.payload) == (dev("pos-a", rest), rest.encode())
    assert a.pending() == [], "nothing of pos-b's, retained or not"


def test_device_cannot_read_another_devices_topics(production_broker: ProductionBroker, peers: list[Peer]) -> None:
    worker = cloud(production_broker, peers)
    assert worker.publish(dev("pos-b", "down/state/cashiers"), b"b roster", retain=True).value in SUCCESS_CODES
    assert worker.publish(dev("pos-a", "down/state/cashiers"), b"a roster", retain=True).value in SUCCESS_CODES
    b = device(production_broker, peers, "pos-b")
    b.subscribe(dev("pos-b", "down/#"))
    assert b.next_message().payload == b"b roster"  # control: the retained doc is there
    a = device(production_broker, peers, "pos-a")
    assert granted(a.subscribe(dev("pos-a", "down/#")))
    assert a.next_message().payload == b"a roster"  # its own retained document
    # The devices' listener plugin refuses every filter outside the device's own down/ at once.
    for topic_filter in (dev("pos-b", "down/#"), "kassa/v1/dev/+/down/#", "kassa/v1/dev/#", "#", dev("pos-a", "up/#")):
        assert [code.value for code in a.subscribe(topic_filter)] == [NOT_AUTHORIZED], topic_filter
    # Live messages: pos-b's ack first, then pos-a's; pos-a must see only its own.
    assert worker.publish(dev("pos-b", "down/ack"), b"for b").value == 0
    assert worker.publish(dev("pos-a", "down/ack"), b"for a").value == 0
    assert b.next_message().payload == b"for b"  # control: it was published and delivered to pos-b
    first = a.next_message()
    assert (first.topic, first.payload) == (dev("pos-a", "down/ack"), b"for a")
    # Nor the cloud's inbound traffic: up/ and status of pos-b are not pos-a's to read.
    assert b.publish(dev("pos-b", "up/sale"), b"b sale").value in SUCCESS_CODES
    assert b.publish(dev("pos-b", "status"), b"online", retain=True).value in SUCCESS_CODES
    assert worker.publish(dev("pos-a", "down/cmd"), b"marker").value == 0
    assert a.next_message().payload == b"marker"
    time.sleep(0.2)
    assert a.pending() == []


def test_device_cannot_publish_outside_its_up_and_status(
    production_broker: ProductionBroker, peers: list[Peer]
) -> None:
    worker = cloud(production_broker, peers)
    worker.subscribe(INGEST)
    worker.subscribe(STATUS)
    b = device(production_broker, peers, "pos-b")
    b.subscribe(dev("pos-b", "down/#"))
    a = device(production_broker, peers, "pos-a")
    forbidden = [
        dev("pos-b", "up/sale"),  # pretend to be another device
        dev("pos-b", "status"),
        dev("pos-b", "down/cmd"),  # command another device
        dev("pos-a", "down/ack"),  # forge the cloud's ack to itself
        dev("pos-a", "down/state/licence"),
        dev("pos-a", "other"),
        "$SYS/broker/uptime",
    ]
    for topic in forbidden:
        assert a.publish(topic, b"forged").value == NOT_AUTHORIZED, topic
    assert a.publish(dev("pos-a", "up/sale"), b"real").value == 0
    first = worker.next_message()
    assert (first.topic, first.payload) == (dev("pos-a", "up/sale"), b"real")
    assert worker.publish(dev("pos-b", "down/ack"), b"real ack").value == 0
    first_b = b.next_message()
    assert first_b.payload == b"real ack", "pos-a's forged command never reached pos-b"
    time.sleep(0.2)
    assert worker.pending() == [] and b.pending() == []


def test_the_certificate_decides_the_identity(production_broker: ProductionBroker, peers: list[Peer]) -> None:
    """A device must send its certificate's CN as username, and its client id becomes that name:
    claiming another device's name is refused at CONNECT, before it could take that client id."""
    worker = cloud(production_broker, peers)
    worker.subscribe(INGEST)
    b = device(production_broker, peers, "pos-b")
    liar = Peer(production_broker.device_port, production_broker.pki, "pos-a", client_id="pos-b", username="pos-b")
    peers.append(liar)
    refused = liar.connect()
    assert refused.is_failure and refused.getName() == "Not authorized"
    production_broker.wait_for_log("kassa_device_acl: refused 'pos-a': the username must be the certificate's CN")
    a = device(production_broker, peers, "pos-a", client_id="pos-b")  # the right username, another client id
    assert a.publish(dev("pos-b", "up/sale"), b"as b").value == NOT_AUTHORIZED
    assert a.publish(dev("pos-a", "up/sale"), b"as a").value == 0
    assert worker.next_message().payload == b"as a"
    assert b.disconnects.empty(), "pos-b was not disconnected by a client claiming its client id"
    assert b.publish(dev("pos-b", "up/sale"), b"b still here").value == 0
    assert worker.next_message().payload == b"b still here"
    assert "as pos-a (p5, c1, k30, u'pos-a')" in production_broker.log(), (
        "the broker replaced the client id with the CN"
    )


def test_clients_without_a_valid_certificate_are_refused(
    production_broker: ProductionBroker, pki: Path, rogue_pki: Path
) -> None:
    for port in (production_broker.device_port, production_broker.cloud_port):
        outcome = Peer(port, pki, None).try_connect()
        assert outcome.startswith("refused"), f"no client certificate: {outcome}"
        rogue = Peer(port, pki, "pos-a", cert_dir=rogue_pki / "clients").try_connect()
        assert rogue.startswith("refused"), f"pos-a certificate from another CA: {rogue}"
        plain = Peer(port, pki, "pos-a", tls=False).try_connect()
        assert plain.startswith("refused"), f"plain MQTT without TLS: {plain}"
    for reason in ("peer did not return a certificate", "certificate verify failed", "wrong version number"):
        assert production_broker.wait_for_log(reason, 2).count(reason) == 2, reason
    # Control: the same attempt with the right certificate gets in.
    assert Peer(production_broker.device_port, pki, "pos-a").try_connect() == "connected"


def test_will_and_status_only_for_the_devices_own_topic(production_broker: ProductionBroker, peers: list[Peer]) -> None:
    worker = cloud(production_broker, peers)
    worker.subscribe(STATUS)
    a = Peer(production_broker.device_port, production_broker.pki, "pos-a", will=(dev("pos-a", "status"), b"offline"))
    peers.append(a)
    assert not a.connect().is_failure
    assert a.publish(dev("pos-a", "status"), b"online", retain=True).value == 0
    assert worker.next_message().payload == b"online"
    a.client.loop_stop()  # no network loop: paho must not reconnect on its own
    a.client.socket().close()  # a power cut: no DISCONNECT, so the broker publishes the will
    msg = worker.next_message(timeout_s=40)
    assert (msg.topic, msg.payload) == (dev("pos-a", "status"), b"offline")
    # A will on another device's status: Mosquitto 2.0.11 accepts the CONNECT, but the will is
    # checked against the ACL when it fires and is dropped.
    liar = Peer(
        production_broker.device_port,
        production_broker.pki,
        "pos-a",
        client_id="liar",
        will=(dev("pos-b", "status"), b"offline"),
    )
    peers.append(liar)
    assert not liar.connect().is_failure
    liar.client.loop_stop()
    liar.client.socket().close()
    deadline = time.monotonic() + 10
    while (
        production_broker.log().count("pos-a closed its connection")
        + production_broker.log().count("Socket error on client pos-a")
        < 2
    ):
        assert time.monotonic() < deadline, production_broker.log()
        time.sleep(0.05)
    b = device(production_broker, peers, "pos-b")
    assert b.publish(dev("pos-b", "status"), b"b online", retain=True).value == 0
    msg = worker.next_message()
    assert (msg.topic, msg.payload) == (dev("pos-b", "status"), b"b online"), "the forged will was not published"


def test_state_documents_of_2_mib_pass_and_larger_packets_are_refused(
    production_broker: ProductionBroker, peers: list[Peer]
) -> None:
    worker = cloud(production_broker, peers)
    a = device(production_broker, peers, "pos-a")
    a.subscribe(dev("pos-a", "down/#"))
    doc = b"x" * (2 * 1024 * 1024)  # the protocol's limit for down/state
    assert worker.publish(dev("pos-a", "down/state/cashiers"), doc, retain=True).value == 0
    msg = a.next_message()
    assert msg.topic == dev("pos-a", "down/state/cashiers") and msg.payload == doc
    too_big = cloud(production_broker, peers, "kassa-ingest-big")
    too_big.client.publish(dev("pos-a", "down/state/config"), b"y" * (3 * 1024 * 1024 + 1), qos=1)
    too_big.disconnects.get(timeout=10)  # the broker drops a client that sends a packet over 3 MiB
    assert "Client kassa-ingest-big disconnected due to oversize packet" in production_broker.log()
    assert worker.publish(dev("pos-a", "down/cmd"), b"after").value == 0
    assert a.next_message().payload == b"after", "the oversized packet was not delivered"


def test_a_share_prefixed_acl_line_alone_grants_nothing(tmp_path: Path, pki: Path, peers: list[Peer]) -> None:
    """Why the ACL grants `read kassa/v1/dev/+/up/#` rather than naming the $share filter.

    Mosquitto 2.0 checks each delivered message's topic against `read`; a line with the
    `$share/ingest/` prefix never matches a message topic, so the workers would get nothing.
    """
    acl = (
        (PRODUCTION / "acl-cloud")
        .read_text()
        .replace("topic read kassa/v1/dev/+/up/#", "topic read $share/ingest/kassa/v1/dev/+/up/#")
    )
    assert "topic read $share/ingest/" in acl
    pb = start_production_broker(tmp_path / "variant", pki, acl_text=acl)
    try:
        worker = cloud(pb, peers)
        suback = worker.subscribe(INGEST)
        assert granted(suback), "the SUBACK grants it all the same (no check at subscribe time)"
        worker.subscribe(STATUS)
        a = device(pb, peers, "pos-a")
        assert a.publish(dev("pos-a", "up/sale"), b"lost").value in SUCCESS_CODES
        assert a.publish(dev("pos-a", "status"), b"online").value == 0
        msg = worker.next_message()
        assert (msg.topic, msg.payload) == (dev("pos-a", "status"), b"online"), "the sale was not delivered"
    finally:
        pb.broker.kill()


def test_cloud_account_cannot_forge_device_messages(production_broker: ProductionBroker, peers: list[Peer]) -> None:
    worker = cloud(production_broker, peers)
    worker.subscribe(INGEST)
    for topic in (dev("pos-a", "up/sale"), dev("pos-a", "status")):
        assert worker.publish(topic, b"forged").value == NOT_AUTHORIZED, topic
    a = device(production_broker, peers, "pos-a")
    assert a.publish(dev("pos-a", "up/sale"), b"real").value == 0
    assert worker.next_message().payload == b"real"
    assert worker.pending() == []


def test_the_real_agent_logs_in_with_its_certificate(
    production_broker: ProductionBroker, peers: list[Peer], tmp_path: Path
) -> None:
    """kassa-agent with [mqtt] tls = true and pos-a's certificate, against the production config."""
    worker = cloud(production_broker, peers)
    worker.subscribe(INGEST)
    worker.subscribe(STATUS)
    agent = AgentProcess(tls_agent_config(tmp_path / "agent", production_broker, "pos-a")).start()

    def next_status():
        # the agent's state report (up/state) arrives on the ingest subscription too
        while True:
            message = worker.next_message(timeout_s=20)
            if message.topic == dev("pos-a", "status"):
                return message

    try:
        online = next_status()
        parsed = kc.parse_message(online.topic, bytes(online.payload))
        assert isinstance(parsed, kc.Parsed), parsed
        assert parsed.envelope.body.state == "online", agent.log()
        assert agent.stop() == 0
        offline = next_status()
        parsed = kc.parse_message(offline.topic, bytes(offline.payload))
        assert isinstance(parsed, kc.Parsed) and parsed.envelope.body.state == "offline"
        assert "as pos-a (p5, c0, k30, u'pos-a')" in production_broker.log(), "client id = username = CN"
    finally:
        agent.kill()


def test_agent_and_cloud_worker_exchange_through_the_production_broker(
    production_broker: ProductionBroker, tmp_path: Path
) -> None:
    """The whole loop over TLS with client certificates and the production ACL: the agent's
    up/state reaches a real `kassa-cloud worker` (CN kassa-cloud, $share/ingest), is applied,
    and the worker's down/ack empties the agent's outbox."""
    with tls_worker(tmp_path / "cloud", production_broker) as worker:
        config = tls_agent_config(
            tmp_path / "agent", production_broker, "pos-a", ack_timeout_s=2.0
        )  # the worker may subscribe a moment after the agent's first report
        agent = AgentProcess(config).start()
        try:
            worker.wait_applied("pos-a", 1, timeout_s=30)
            wait_for(agent, lambda s: s["components"]["cloud"]["outbox_depth"] == 0, "the cloud's ack came back")
            assert agent.stop() == 0
        finally:
            agent.kill()
