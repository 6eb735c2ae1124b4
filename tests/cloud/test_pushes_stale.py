"""A document the broker lost (a crash before it saved retained messages) is published again
once a device's state report shows it never arrived."""

from __future__ import annotations

import queue
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from broker import contract as kc
from broker.launcher import Mosquitto
from cloud_api.ingest.models import DeviceReport
from cloud_api.pushes.models import DesiredState
from cloud_api.pushes.publisher import PublisherOptions
from cloud_api.pushes.stale import republish_stale
from tests.cloud.api_support import BACKENDS
from tests.cloud.pushes_support import PushDb, push_database, wait_for
from tests.cloud.test_pushes_publisher import publisher, retained_docs, set_docs

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PushDb]:
    with push_database(request.param, tmp_path) as value:
        yield value


def report(db: PushDb, device_id: str, at: datetime, applied: dict[str, int]) -> None:
    body = kc.DeviceState(software_version="1.0", applied_versions=applied, outbox_depth=0)
    with Session(db.engine) as session, session.begin():
        session.execute(
            insert(DeviceReport),
            [
                {
                    "device_id": device_id,
                    "kind": "state",
                    "seq": 1,
                    "report": body.model_dump(mode="json", exclude_none=True),
                    "message_id": uuid.uuid4(),
                    "reported_at": at,
                }
            ],
        )


def published(db: PushDb, at: datetime) -> None:
    with Session(db.engine) as session, session.begin():
        session.execute(
            update(DesiredState).values(published_version=DesiredState.version, published_at=at, publish_pending=False)
        )


def test_only_a_settled_report_made_after_the_publish_and_showing_less_marks_a_doc(db: PushDb) -> None:
    missed, current, earlier, ahead, later = db.add_devices("missed", "current", "earlier", "ahead", "later")
    set_docs(db, "config", {d: {"language": "en"} for d in (missed, current, earlier, ahead, later)})
    set_docs(db, "config", {d: {"language": "de"} for d in (missed, current, earlier, ahead, later)})  # v2
    published(db, T0)
    report(db, missed, T0 + timedelta(seconds=5), {"config": 1})
    report(db, current, T0 + timedelta(seconds=5), {"config": 2})
    report(db, earlier, T0 - timedelta(seconds=5), {"config": 1})  # made before the publish
    report(db, ahead, T0 + timedelta(seconds=5), {"config": 3})  # a restored database: not ours to fix here
    report(db, later, T0 + timedelta(seconds=50), {})  # not settled yet: looked at in a later window
    with Session(db.engine) as session, session.begin():
        assert republish_stale(session, T0 - timedelta(minutes=1), T0 + timedelta(seconds=10)) == 1
    assert [d for d in (missed, current, earlier, ahead, later) if db.state(d).publish_pending] == [missed]  # type: ignore[union-attr]
    with Session(db.engine) as session, session.begin():  # the next window: the late report, nothing applied
        assert republish_stale(session, T0 + timedelta(seconds=10), T0 + timedelta(seconds=60)) == 1
    assert db.state(later).publish_pending  # type: ignore[union-attr]


def test_a_retained_doc_the_broker_lost_is_published_again(db: PushDb, mosquitto: Mosquitto) -> None:
    [device] = db.add_devices("lost-doc")
    set_docs(db, "config", {device: {"language": "en"}})
    running = publisher(
        db, mosquitto, options=PublisherOptions(poll_s=0.05, lease_s=1.5, stale_settle_s=0.2, stale_every_s=0.1)
    ).start()
    try:
        wait_for(lambda: db.pending() == 0, "the document published")
        assert retained_docs(mosquitto, 1)[(device, "config")].version == 1
        # The broker forgets it (as after a crash before its autosave) ...
        mosquitto.stop()
        for saved in mosquitto.persistence_dir.glob("*.db"):
            saved.unlink()
        mosquitto.start()
        with pytest.raises(queue.Empty):  # nothing retained any more
            retained_docs(mosquitto, 1, timeout_s=1)
        # ... and the device, connecting to it, reports that it has nothing applied.
        report(db, device, datetime.now(UTC), {})
        wait_for(lambda: running.stats().republished == 1 and db.pending() == 0, "the document published again", 20)
        assert retained_docs(mosquitto, 1)[(device, "config")].version == 1
    finally:
        running.stop()
