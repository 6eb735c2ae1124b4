"""Desired state: versions the database raises on every change (never shared, even when
writers race), bulk changes, refused documents, and the publisher's bookkeeping."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session

from cloud_api.pushes import desired_state, outgoing
from cloud_api.pushes.desired_state import InvalidDocError
from tests.cloud.api_support import BACKENDS
from tests.cloud.pushes_support import PushDb, push_database


@pytest.fixture(scope="module", params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PushDb]:
    with push_database(request.param, tmp_path_factory.mktemp("pushes")) as value:
        yield value


def set_doc(db: PushDb, device_id: str, doc: dict, domain: str = "config") -> int:
    with Session(db.engine) as session, session.begin():
        return desired_state.set_doc(session, device_id, domain, doc)


def test_versions_start_at_one_and_grow_with_each_change(db: PushDb) -> None:
    [device] = db.add_devices("state-seq")
    assert [set_doc(db, device, {"n": n}) for n in range(3)] == [1, 2, 3]
    row = db.state(device)
    assert row is not None and (row.version, row.doc) == (3, {"n": 2})
    assert (row.published_version, row.published_at, row.publish_pending) == (0, None, True)
    # domains count separately
    assert set_doc(db, device, {"cashiers": []}, "cashiers") == 1


def test_a_rolled_back_change_leaves_nothing(db: PushDb) -> None:
    [device] = db.add_devices("state-rollback")
    set_doc(db, device, {"kept": True})
    with Session(db.engine) as session:
        assert desired_state.set_doc(session, device, "config", {"kept": False}) == 2
        session.rollback()
    row = db.state(device)
    assert row is not None and (row.version, row.doc) == (1, {"kept": True})


def test_bulk_change_gives_every_device_its_next_version(db: PushDb) -> None:
    devices = db.add_devices(*(f"bulk-{n:04d}" for n in range(1500)))
    set_doc(db, devices[7], {"early": 1})
    set_doc(db, devices[7], {"early": 2})
    with Session(db.engine) as session, session.begin():
        versions = desired_state.set_docs(session, "cashiers", {d: {"roster": [d]} for d in devices})
    assert versions == dict.fromkeys(devices, 1)
    with Session(db.engine) as session, session.begin():
        versions = desired_state.set_docs(session, "config", {d: {"language": "de"} for d in devices})
    assert versions[devices[7]] == 3 and all(versions[d] == 1 for d in devices if d != devices[7])
    row = db.state(devices[1499], "cashiers")
    assert row is not None and row.doc == {"roster": [devices[1499]]}


def test_concurrent_changes_never_share_a_version(db: PushDb) -> None:
    """Eight writers, each changing one document 15 times in its own transactions: the
    database hands out 1..120 exactly once, and the document is the one of version 120."""
    [device] = db.add_devices("state-race")
    writers, changes = 8, 15
    got: list[tuple[int, str]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(writers)

    def write(writer: int) -> None:
        try:
            start.wait()
            for n in range(changes):
                marker = f"w{writer}-{n}"
                got.append((set_doc(db, device, {"marker": marker}), marker))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert sorted(version for version, _ in got) == list(range(1, writers * changes + 1))
    row = db.state(device)
    assert row is not None and row.version == writers * changes
    assert row.doc == {"marker": dict(got)[writers * changes]}


def test_concurrent_bulk_changes_do_not_deadlock_or_lose_a_bump(db: PushDb) -> None:
    devices = db.add_devices(*(f"race-bulk-{n:03d}" for n in range(200)))
    errors: list[BaseException] = []

    def bump(order: list[str]) -> None:
        try:
            for _ in range(5):
                with Session(db.engine) as session, session.begin():
                    desired_state.set_docs(session, "licence", {d: {"n": 1} for d in order})
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=bump, args=(order,)) for order in (devices, devices[::-1], devices[50:] + devices[:50])
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert {db.state(d, "licence").version for d in devices} == {15}  # type: ignore[union-attr]


BAD_DEVICE_NUMBERS = itertools.count()


@pytest.mark.parametrize(
    ("domain", "doc", "problem"),
    [
        ("bogus", {}, "unknown state domain 'bogus'"),
        ("config", {"footer": "a\x00b"}, "NUL character"),
        ("config", {"ratio": float("nan")}, "not JSON"),
        ("config", {"tags": {"a", "b"}}, "not JSON"),
        ("config", {"text": "\ud800"}, "not JSON"),
        ("config", {"blob": "x" * (2 * 1024 * 1024)}, "larger than a state message"),
    ],
)
def test_documents_that_cannot_be_sent_are_refused(db: PushDb, domain: str, doc: dict, problem: str) -> None:
    [device] = db.add_devices(f"state-bad-{next(BAD_DEVICE_NUMBERS)}")
    with pytest.raises(InvalidDocError, match=problem):
        set_doc(db, device, doc, domain)
    assert db.state(device, "config") is None


def test_published_version_only_moves_forward(db: PushDb) -> None:
    [device] = db.add_devices("state-mark")
    for n in range(3):
        set_doc(db, device, {"n": n})
    now = datetime.now(UTC)

    def mark(version: int) -> tuple[int, bool]:
        with Session(db.engine) as session, session.begin():
            outgoing.mark_docs_published(session, [(device, "config", version)], now)
        row = db.state(device)
        assert row is not None
        return row.published_version, row.publish_pending

    assert mark(2) == (2, True)  # version 3 was written meanwhile: still to publish
    assert mark(3) == (3, False)
    assert mark(1) == (3, False)  # a late PUBACK of an old version changes nothing
    assert set_doc(db, device, {"n": 3}) == 4
    assert db.state(device).publish_pending  # type: ignore[union-attr]


def test_unpublished_docs_are_listed_oldest_change_first(db: PushDb) -> None:
    devices = db.add_devices("order-a", "order-b", "order-c")
    for device in devices:
        set_doc(db, device, {"d": device}, "licence")
    with Session(db.engine) as session:
        listed = [
            d
            for d in outgoing.unpublished_docs(session, page_size=7)
            if d.domain == "licence" and d.device_id.startswith("order-")
        ]
    assert [d.device_id for d in listed] == devices
    publication = listed[0].publication()
    assert publication.retain and publication.qos == 1
    assert publication.topic == "kassa/v1/dev/order-a/down/state/licence"
