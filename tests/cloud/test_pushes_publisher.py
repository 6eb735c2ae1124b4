"""The publisher against a real Mosquitto: retained state docs marked only after PUBACK,
bulk publishing, the broker down at publish time, one publisher at a time, commands resent
until answered."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from broker import contract as kc
from broker.launcher import Mosquitto
from cloud_api.ingest.models import CommandReply
from cloud_api.pushes import commands, desired_state, lease
from cloud_api.pushes.mqtt import BrokerOptions
from cloud_api.pushes.publisher import PublisherOptions, PushPublisher
from tests.cloud.api_support import BACKENDS
from tests.cloud.pushes_support import PushDb, push_database, wait_for
from tests.support.mqtt_peer import MqttPeer

FAST = PublisherOptions(
    poll_s=0.05,
    lease_s=1.5,
    command_resend_s=0.3,
    command_resend_max_s=0.3,
    command_max_attempts=3,
    close_commands_every_s=0.1,
)


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PushDb]:
    with push_database(request.param, tmp_path) as value:
        yield value


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[PushDb]:
    with push_database("sqlite", tmp_path) as value:
        yield value


def publisher(db: PushDb, broker: Mosquitto, name: str = "p1", options: PublisherOptions = FAST) -> PushPublisher:
    return PushPublisher(
        db.engine, BrokerOptions(broker.host, broker.port, f"kassa-pushes-{name}", reconnect_max_s=1.0), options=options
    )


def set_docs(db: PushDb, domain: str, docs: dict[str, dict]) -> dict[str, int]:
    with Session(db.engine) as session, session.begin():
        return desired_state.set_docs(session, domain, docs)


def retained_docs(broker: Mosquitto, count: int, timeout_s: float = 20) -> dict[tuple[str, str], kc.StateDoc]:
    """What a device subscribing now would get: the retained doc of each (device, domain)."""
    found: dict[tuple[str, str], kc.StateDoc] = {}
    with MqttPeer(broker, f"reader-{uuid.uuid4().hex[:6]}") as peer:
        peer.subscribe("kassa/v1/dev/+/down/state/#")
        deadline = time.monotonic() + timeout_s
        while len(found) < count and time.monotonic() < deadline:
            parsed = peer.next_parsed(timeout_s=max(0.1, deadline - time.monotonic()))
            found[(parsed.envelope.device_id, parsed.body.domain.value)] = parsed.body  # type: ignore[union-attr]
        peer.client.disconnect()  # first, so that closing does not wait for the network loop's select
    return found


def test_latest_versions_are_published_retained_and_marked_after_puback(db: PushDb, mosquitto: Mosquitto) -> None:
    devices = db.add_devices("pub-1", "pub-2")
    set_docs(db, "config", {d: {"language": "en"} for d in devices})
    set_docs(db, "config", {"pub-1": {"language": "de"}})
    set_docs(db, "cashiers", {"pub-2": {"cashiers": []}})
    running = publisher(db, mosquitto).start()
    try:
        wait_for(lambda: db.pending() == 0, "every document published")
        docs = retained_docs(mosquitto, 3)
        assert {key: (doc.version, doc.doc) for key, doc in docs.items()} == {
            ("pub-1", "config"): (2, {"language": "de"}),
            ("pub-2", "config"): (1, {"language": "en"}),
            ("pub-2", "cashiers"): (1, {"cashiers": []}),
        }
        row = db.state("pub-1")
        assert row is not None and (row.published_version, row.publish_pending) == (2, False) and row.published_at
        # a change while it runs is on its way within a few polls
        changed = time.monotonic()
        set_docs(db, "config", {"pub-2": {"language": "fr"}})
        wait_for(lambda: db.state("pub-2").published_version == 2, "the new version published", 5)  # type: ignore[union-attr]
        assert time.monotonic() - changed < 2.0
        assert retained_docs(mosquitto, 3)[("pub-2", "config")].doc == {"language": "fr"}
        assert running.stats().docs_published == 4
    finally:
        running.stop()


def test_thousands_of_devices_are_published_in_bulk(db: PushDb, tmp_path: Path) -> None:
    """Against a broker that announces a Receive Maximum of 20, as the production one does."""
    devices = db.add_devices(*(f"bulk-{n:04d}" for n in range(3000)))
    set_docs(db, "cashiers", {d: {"cashiers": [{"cashier_id": d}]} for d in devices})
    with Mosquitto(tmp_path / "broker", extra_config="max_inflight_messages 20") as broker:
        started = time.monotonic()
        running = publisher(db, broker).start()
        try:
            wait_for(lambda: db.pending() == 0, "3000 documents published", 60)
            elapsed = time.monotonic() - started
            docs = retained_docs(broker, 3000)
            assert len(docs) == 3000 and all(doc.version == 1 for doc in docs.values())
            assert docs[("bulk-2999", "cashiers")].doc == {"cashiers": [{"cashier_id": "bulk-2999"}]}
            stats = running.stats()
            assert stats.docs_published == 3000 and stats.waves <= 10, stats  # in waves, not one by one
            assert stats.connection_resets == 0
            print(f"3000 retained docs published and recorded in {elapsed:.2f} s")
        finally:
            running.stop()


def test_broker_down_at_publish_time_then_published_when_it_returns(sqlite_db: PushDb, mosquitto: Mosquitto) -> None:
    db = sqlite_db
    [device] = db.add_devices("offline-broker")
    running = publisher(db, mosquitto).start()
    try:
        wait_for(lambda: running.connected, "publisher connected")
        mosquitto.stop()
        set_docs(db, "config", {device: {"v": 1}})
        set_docs(db, "config", {device: {"v": 2}})
        time.sleep(1.0)
        row = db.state(device)
        assert row is not None and (row.published_version, row.publish_pending) == (0, True)
        mosquitto.restart()
        wait_for(lambda: db.state(device).published_version == 2, "published after the broker returned")  # type: ignore[union-attr]
        doc = retained_docs(mosquitto, 1)[(device, "config")]
        assert (doc.version, doc.doc) == (2, {"v": 2})
    finally:
        running.stop()


def test_a_push_the_broker_refuses_stays_pending_and_others_go_through(sqlite_db: PushDb, tmp_path: Path) -> None:
    db = sqlite_db
    acl = tmp_path / "acl"
    acl.write_text("topic write kassa/v1/dev/allowed/#\ntopic read kassa/v1/dev/#\n")
    with Mosquitto(tmp_path / "acl-broker", extra_config=f"acl_file {acl}") as broker:
        db.add_devices("allowed", "denied")
        set_docs(db, "config", {"allowed": {"ok": True}, "denied": {"ok": False}})
        running = publisher(db, broker).start()
        try:
            wait_for(lambda: db.state("allowed").published_version == 1, "the allowed doc published")  # type: ignore[union-attr]
            wait_for(lambda: running.stats().refused >= 1, "the refusal counted")
            row = db.state("denied")
            assert row is not None and (row.published_version, row.publish_pending) == (0, True)
        finally:
            running.stop()


# A longer lease than FAST for the leader change tests: a leader would have to be starved of CPU
# for two seconds before the other may rightly take over (a loaded machine must not add a flip).
TAKEOVER = replace(FAST, lease_s=3.0)


def test_one_publisher_at_a_time_and_a_standby_takes_over(db: PushDb, mosquitto: Mosquitto) -> None:
    [device] = db.add_devices("leased")
    first, second = (publisher(db, mosquitto, name, TAKEOVER).start() for name in ("a", "b"))
    try:
        wait_for(lambda: first.stats().leader or second.stats().leader, "a leader")
        time.sleep(2 * TAKEOVER.lease_s / 3)  # two lease rounds: the other must still be standing by
        leader, standby = (first, second) if first.stats().leader else (second, first)
        assert not standby.stats().leader and not standby.connected
        assert lease.current_holder(db.engine) == leader.holder
        set_docs(db, "config", {device: {"by": "leader"}})
        wait_for(lambda: db.pending() == 0, "published by the leader")
        # The count follows the record's commit (stats.docs_published): wait for it, do not race it.
        wait_for(lambda: leader.stats().docs_published == 1, "the leader counting its publication")
        assert standby.stats().docs_published == 0
        leader.stop()  # releases the lease
        wait_for(lambda: standby.stats().leader, "the standby taking over")
        set_docs(db, "config", {device: {"by": "standby"}})
        wait_for(lambda: db.pending() == 0, "published by the former standby")
        row = db.state(device)
        assert row is not None and (row.version, row.published_version) == (2, 2)
        wait_for(lambda: standby.stats().docs_published == 1, "the former standby counting its publication")
        assert leader.stats().docs_published == 1  # the stopped one did nothing more
        doc = retained_docs(mosquitto, 1)[(device, "config")]
        assert (doc.version, doc.doc) == (2, {"by": "standby"})
    finally:
        first.stop()
        second.stop()


def test_a_leader_stalled_between_puback_and_record_loses_no_doc(db: PushDb, mosquitto: Mosquitto) -> None:
    """The leader change window: the leader has the broker's PUBACK but stalls (GC pause, slow
    disk) before recording it, past its lease. The standby takes over and publishes the doc
    again, then a newer version; the stalled one's late record of the older version changes nothing."""
    [device] = db.add_devices("stalled")
    first = publisher(db, mosquitto, "a", TAKEOVER).start()
    reached, resume = threading.Event(), threading.Event()
    record = first._record_accepted

    def stalled_record() -> bool:
        reached.set()
        resume.wait(60)
        return record()

    first._record_accepted = stalled_record  # type: ignore[method-assign]
    second = publisher(db, mosquitto, "b", TAKEOVER)  # started once the first has stalled
    try:
        set_docs(db, "config", {device: {"v": 1}})
        assert reached.wait(20), "the first publisher never had a PUBACK to record"
        row = db.state(device)  # acknowledged by the broker, not recorded: still pending
        assert row is not None and (row.published_version, row.publish_pending) == (0, True)
        second.start()
        wait_for(lambda: second.stats().leader, "the standby taking the lapsed lease")
        wait_for(lambda: db.pending() == 0, "version 1 published by the standby")
        set_docs(db, "config", {device: {"v": 2}})
        wait_for(lambda: db.pending() == 0, "version 2 published by the standby")
        resume.set()
        # It records its late PUBACK, then finds the lease taken (stats.leader turns false after).
        wait_for(lambda: not first.stats().leader, "the stalled publisher standing by")
        assert first.stats().docs_published == 1
        wait_for(lambda: second.stats().docs_published == 2, "the standby counting versions 1 and 2")
        row = db.state(device)
        assert row is not None and (row.version, row.published_version, row.publish_pending) == (2, 2, False)
        doc = retained_docs(mosquitto, 1)[(device, "config")]
        assert (doc.version, doc.doc) == (2, {"v": 2})
    finally:
        resume.set()
        first.stop()
        second.stop()


def new_command(db: PushDb, device_id: str, expires_in: timedelta = timedelta(minutes=5)) -> uuid.UUID:
    with Session(db.engine) as session, session.begin():
        return commands.create_command(session, device_id, "ping", {}, expires_in=expires_in).command_id


def test_command_is_resent_until_answered(db: PushDb, mosquitto: Mosquitto) -> None:
    [device] = db.add_devices("cmd-answer")
    with MqttPeer(mosquitto, "fake-device") as fake_device:
        fake_device.subscribe(kc.cmd_topic(device))
        command_id = new_command(db, device)
        running = publisher(db, mosquitto).start()
        try:
            first = fake_device.next_parsed(topic_suffix="/down/cmd")
            again = fake_device.next_parsed(topic_suffix="/down/cmd")  # no reply yet: resent
            assert first.envelope.id == again.envelope.id == command_id
            assert isinstance(first.body, kc.Command) and first.body.name == "ping" and first.body.expires_at
            # the reply, as the ingest records it
            with Session(db.engine) as session, session.begin():
                session.add(
                    CommandReply(
                        correlation_id=command_id,
                        device_id=device,
                        ok=True,
                        reply={"ok": True, "result": {"pong": True}},
                        message_id=kc.uuid7(),
                        received_at=datetime.now(UTC),
                    )
                )
            wait_for(lambda: not db.command(command_id).open, "the answered command closed")
            sends = db.command(command_id).attempts
            time.sleep(3 * FAST.command_resend_s)
            assert db.command(command_id).attempts == sends  # no resend after the reply
        finally:
            running.stop()


def test_unanswered_commands_stop_after_the_last_attempt_or_expiry(db: PushDb, mosquitto: Mosquitto) -> None:
    device, other = db.add_devices("cmd-silent", "cmd-other")
    command_id = new_command(db, device)
    expiring = new_command(db, device, timedelta(milliseconds=400))  # before its last attempt
    # a reply from another device with this id is not an answer
    with Session(db.engine) as session, session.begin():
        session.add(
            CommandReply(
                correlation_id=command_id,
                device_id=other,
                ok=True,
                reply={"ok": True},
                message_id=kc.uuid7(),
                received_at=datetime.now(UTC),
            )
        )
    running = publisher(db, mosquitto).start()
    try:
        wait_for(lambda: not db.command(command_id).open, "giving up", 10)
        wait_for(lambda: not db.command(expiring).open, "the expired command closed", 10)
        now = datetime.now(UTC)
        with Session(db.engine) as session:
            found = commands.device_command(session, device, command_id)
            assert found is not None and found[1] is None
            assert found[0].attempts == FAST.command_max_attempts
            assert commands.command_state(found[0], None, now) is commands.CommandState.GAVE_UP
            expired = commands.device_command(session, device, expiring)
            assert expired is not None
            assert commands.command_state(expired[0], None, now) is commands.CommandState.EXPIRED
    finally:
        running.stop()


def test_the_worker_runs_a_publisher_unless_told_not_to(monkeypatch: pytest.MonkeyPatch, sqlite_db: PushDb) -> None:
    from cloud_api.main import SETTINGS_KEYS, build_parser
    from cloud_api.pushes.config import publisher_from_settings
    from cloud_api.settings import CloudSettings

    def worker_settings(*argv: str) -> CloudSettings:  # as cloud_api.main builds them
        args = vars(build_parser().parse_args(["worker", *argv]))
        return CloudSettings(**{k: v for k, v in args.items() if v is not None and k in SETTINGS_KEYS})

    assert worker_settings().push_enabled is True
    assert worker_settings("--no-pushes").push_enabled is False
    monkeypatch.setenv("KASSA_CLOUD_PUSH_ENABLED", "false")
    assert worker_settings().push_enabled is False
    monkeypatch.setenv("KASSA_CLOUD_COMMAND_RESEND_S", "5")
    settings = worker_settings("--worker-id", "w7", "--mqtt-host", "broker.example", "--mqtt-port", "8884")
    settings = settings.model_copy(
        update={
            "mqtt_ca_file": Path("/etc/kassa/ca.crt"),
            "mqtt_cert_file": Path("/etc/kassa/cloud.crt"),
            "mqtt_key_file": Path("/etc/kassa/cloud.key"),
        }
    )
    built = publisher_from_settings(settings, sqlite_db.engine)
    assert (built.broker.client_id, built.broker.host, built.broker.port) == ("kassa-pushes-w7", "broker.example", 8884)
    assert (built.broker.ca_file, built.broker.cert_file, built.broker.key_file) == (
        "/etc/kassa/ca.crt",
        "/etc/kassa/cloud.crt",
        "/etc/kassa/cloud.key",
    )
    assert built.options.command_resend_s == 5.0 and built.options.poll_s == settings.push_poll_s


def test_racing_publishers_get_the_lease_exactly_once(db: PushDb) -> None:
    holders = [f"racer-{n}" for n in range(8)]
    start = threading.Barrier(len(holders))
    won: list[str] = []

    def race(holder: str) -> None:
        start.wait()
        if lease.take_or_renew(db.engine, holder, 30):
            won.append(holder)

    threads = [threading.Thread(target=race, args=(h,)) for h in holders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(won) == 1 and lease.current_holder(db.engine) == won[0]
    assert lease.take_or_renew(db.engine, won[0], 30)  # the holder renews
    others = [h for h in holders if h != won[0]]
    assert not any(lease.take_or_renew(db.engine, h, 30) for h in others)
    lease.release(db.engine, won[0])
    assert lease.current_holder(db.engine) is None
    assert lease.take_or_renew(db.engine, others[0], 30) and lease.current_holder(db.engine) == others[0]
