"""The licence book's device-driven transitions on real databases (SQLite file, PostgreSQL):
bind, move with receipt or by timeout, renewals, revocation, refusals, and which company a
licence belongs to (another company's terminal never takes it; the holder releases it)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from agent.licence.lease import accept_token
from broker import contract as kc
from cloud_api.licences import binding, book
from cloud_api.licences.records import LicenceRefused
from cloud_api.licences.sweeper import sweep
from cloud_api.tenancy.models import Device
from tests.cloud.api_support import BACKENDS
from tests.cloud.licence_support import LEASE_S, MARGIN_S, T0, DeviceKey, LicenceDb, licence_database, short_policy


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LicenceDb]:
    with licence_database(request.param, tmp_path) as value:
        yield value


def bind(db: LicenceDb, device: DeviceKey, key: str, now=T0, policy=None) -> binding.BindOutcome:
    with Session(db.engine) as session, session.begin():
        return binding.bind(session, device.device_id, key, device.public_text, now, policy or db.policy)


def release(db: LicenceDb, device: DeviceKey, licence_id: str, epoch: int, receipt: str, now=T0) -> bool:
    with Session(db.engine) as session, session.begin():
        return binding.accept_release(session, device.device_id, licence_id, epoch, receipt, now, db.policy)


def refused(call, *args) -> str:
    with pytest.raises(LicenceRefused) as caught:
        call(*args)
    return caught.value.code


def report(db: LicenceDb, device: DeviceKey, leases: list[tuple[str, int]], now, tombstones=(), policy=None) -> None:
    body = kc.LeaseReport(
        kind="lease_report",
        leases=[kc.HeldLease(licence_id=lid, epoch=epoch, lease_expires_at=now) for lid, epoch in leases],
        tombstones=[kc.Tombstone(licence_id=lid, epoch=epoch, receipt=r) for lid, epoch, r in tombstones],
    )
    with Session(db.engine) as session, session.begin():
        binding.apply_lease_report(session, device.device_id, body, now, policy or db.policy)


def test_bind_free_licence_then_again_is_idempotent(db: LicenceDb) -> None:
    ((licence_id, key),) = db.issue(assign_to=db.company_id)
    till = db.add_device("till-1")
    outcome = bind(db, till, key)
    assert (outcome.state, outcome.epoch, outcome.changed) == ("bound", 1, True)
    (lease,) = db.leases("till-1")
    claims = accept_token(
        db.doc("till-1")[1][0],
        device_id="till-1",
        device_key=till.fingerprint,
        trusted_keys=db.trusted,
        highest_epoch=0,
        now_wall=T0.timestamp(),
    )
    assert claims == lease and (lease.licence_id, lease.epoch, lease.company_id) == (licence_id, 1, db.company_id)
    assert lease.expires_at - lease.issued_at == LEASE_S and lease.entitlements == {"seats": 1}
    again = bind(db, till, key, T0 + timedelta(seconds=5))
    assert (again.state, again.epoch, again.changed) == ("bound", 1, False)
    assert [e.action for e in db.events(licence_id)] == ["issued", "assigned", "bound"]


def test_typed_key_forms_and_refusals(db: LicenceDb) -> None:
    ((licence_id, key),) = db.issue(assign_to=db.company_id)
    till = db.add_device("till-1")
    typed = "-".join(key[i : i + 4] for i in range(0, 16, 4)).lower().replace("1", "l").replace("0", "o")
    assert bind(db, till, typed).licence_id == licence_id
    wrong_check = key[:-1] + ("0" if key[-1] != "0" else "1")
    assert refused(bind, db, till, wrong_check) == "licence.key_invalid"
    assert refused(bind, db, till, "NOT-A-KEY") == "licence.key_invalid"
    from broker.contract.licence import new_licence_key

    assert refused(bind, db, till, new_licence_key()) == "licence.key_unknown"
    ((_sealed_id, sealed_key),) = db.issue()
    assert refused(bind, db, till, sealed_key) == "licence.not_assigned"
    impostor = DeviceKey("till-1")  # same id, another key than the registered one
    assert refused(bind, db, impostor, key) == "licence.wrong_device_key"
    ((_old_id, old_key),) = db.issue(valid_until=T0 + timedelta(days=1), assign_to=db.company_id)
    assert refused(bind, db, till, old_key, T0 + timedelta(days=2)) == "licence.expired"


def test_move_with_receipt_grants_next_epoch_and_keeps_the_audit(db: LicenceDb) -> None:
    ((licence_id, key),) = db.issue(assign_to=db.company_id)
    old, new = db.add_device("till-old"), db.add_device("till-new")
    bind(db, old, key)
    moving = bind(db, new, key, T0 + timedelta(seconds=10))
    assert (moving.state, moving.epoch) == ("releasing", 1)
    licence = db.licence(licence_id)
    assert (licence.releasing_from_device_id, licence.releasing_to_device_id) == ("till-old", "till-new")
    (command,) = db.release_commands("till-old")
    assert command.args == {"licence_id": licence_id, "epoch": 1}
    assert db.leases("till-old") == [] and db.doc("till-new") is None
    bind(db, new, key, T0 + timedelta(seconds=11))  # asked again: nothing new
    assert len(db.release_commands("till-old")) == 1
    # Not the old device's renewal either: releasing is never renewed.
    report(db, old, [(licence_id, 1)], T0 + timedelta(seconds=200))
    assert db.leases("till-old") == []

    assert release(db, old, licence_id, 1, old.receipt(licence_id, 1), T0 + timedelta(seconds=20)) is True
    licence = db.licence(licence_id)
    assert (licence.state, licence.device_id, licence.epoch, licence.company_id) == (
        "bound",
        "till-new",
        2,
        db.company_id,
    )
    (lease,) = db.leases("till-new")
    assert (lease.device_id, lease.epoch, lease.device_key) == ("till-new", 2, new.fingerprint)
    assert db.leases("till-old") == []
    trail = [
        (e.actor, e.action, e.from_state, e.to_state, e.from_device_id, e.to_device_id, e.epoch)
        for e in db.events(licence_id)
    ]
    assert trail[2:] == [
        ("device:till-old", "bound", "assigned", "bound", None, "till-old", 1),
        ("device:till-new", "move_requested", "bound", "releasing", "till-old", "till-new", 1),
        ("device:till-old", "released", "releasing", "bound", "till-old", "till-new", 2),
    ]
    assert all(e.at is not None for e in db.events(licence_id))
    # The same receipt again (a resend) and a superseded epoch change nothing.
    assert release(db, old, licence_id, 1, old.receipt(licence_id, 1), T0 + timedelta(seconds=30)) is False
    assert db.licence(licence_id).epoch == 2


def test_forged_receipts_are_refused(db: LicenceDb) -> None:
    ((licence_id, key),) = db.issue(assign_to=db.company_id)
    old, new = db.add_device("till-old"), db.add_device("till-new")
    bind(db, old, key)
    bind(db, new, key)
    other_key = DeviceKey("till-old", Ed25519PrivateKey.generate())
    assert refused(release, db, old, licence_id, 1, other_key.receipt(licence_id, 1)) == "licence.receipt_invalid"
    genuine = old.receipt(licence_id, 1)
    body, signature = genuine.split(".")
    flipped_char = "A" if signature[5] != "A" else "B"
    flipped = f"{body}.{signature[:5]}{flipped_char}{signature[6:]}"
    assert refused(release, db, old, licence_id, 1, flipped) == "licence.receipt_invalid"
    assert refused(release, db, old, licence_id, 1, "not.a-token") == "licence.receipt_invalid"
    assert refused(release, db, old, licence_id, 2, genuine) == "licence.receipt_mismatch"
    # genuine, but from a device that does not hold the licence
    assert refused(release, db, new, licence_id, 1, new.receipt(licence_id, 1)) == "licence.receipt_mismatch"
    assert db.licence(licence_id).state == "releasing"


def test_silent_old_device_loses_the_licence_after_its_lease_and_margin(db: LicenceDb) -> None:
    ((licence_id, key),) = db.issue(assign_to=db.company_id)
    old, new = db.add_device("till-old"), db.add_device("till-new")
    bind(db, old, key)
    bind(db, new, key, T0 + timedelta(seconds=100))
    deadline = db.licence(licence_id).release_deadline
    assert deadline.replace(tzinfo=T0.tzinfo) == T0 + timedelta(seconds=LEASE_S + MARGIN_S)
    with Session(db.engine) as session, session.begin():
        assert sweep(session, T0 + timedelta(seconds=LEASE_S + MARGIN_S - 1), db.policy).granted == 0
    with Session(db.engine) as session, session.begin():
        assert sweep(session, T0 + timedelta(seconds=LEASE_S + MARGIN_S), db.policy).granted == 1
    licence = db.licence(licence_id)
    assert (licence.state, licence.device_id, licence.epoch) == ("bound", "till-new", 2)
    last = db.events(licence_id)[-1]
    assert (last.actor, last.action, last.detail) == (
        "system",
        "released_by_timeout",
        "old device silent; its lease ran out",
    )
    assert [lease.epoch for lease in db.leases("till-new")] == [2]


def test_lease_report_renews_and_drops_what_is_no_longer_granted(db: LicenceDb) -> None:
    ((licence_id, key),) = db.issue(assign_to=db.company_id)
    till = db.add_device("till-1")
    bind(db, till, key)
    (first,) = db.leases("till-1")
    version = db.doc("till-1")[0]
    report(db, till, [(licence_id, 1)], T0 + timedelta(seconds=10))  # too soon to re-sign
    assert db.doc("till-1")[0] == version
    later = T0 + timedelta(seconds=300)
    report(db, till, [(licence_id, 1), ("lic_gone", 4)], later)
    (renewed,) = db.leases("till-1")
    assert renewed.issued_at == int(later.timestamp()) and renewed.expires_at > first.expires_at
    assert db.licence(licence_id).lease_expires_at.replace(tzinfo=T0.tzinfo).timestamp() == renewed.expires_at


def test_reports_after_a_reconnect_storm_do_not_re_sign_young_leases(db: LicenceDb) -> None:
    """Devices report on every connect; with the default hourly renewal a lease issued minutes
    ago is kept (no signature, no document), and one past half the period is renewed."""
    hourly = short_policy(db.cloud_key, lease_s=7 * 86400, renew_after_s=3600)
    ((licence_id, key),) = db.issue(assign_to=db.company_id)
    till = db.add_device("till-1")
    bind(db, till, key, policy=hourly)
    (first,) = db.leases("till-1")
    version = db.doc("till-1")[0]
    report(db, till, [(licence_id, 1)], T0 + timedelta(minutes=5), policy=hourly)  # the broker restarted
    report(db, till, [(licence_id, 1)], T0 + timedelta(minutes=29), policy=hourly)
    assert db.doc("till-1")[0] == version and db.leases("till-1") == [first]
    later = T0 + timedelta(minutes=31)
    report(db, till, [(licence_id, 1)], later, policy=hourly)
    (renewed,) = db.leases("till-1")
    assert db.doc("till-1")[0] > version and renewed.issued_at == int(later.timestamp())


def test_lease_never_outlives_the_licence_and_sweep_drops_it(db: LicenceDb) -> None:
    ((licence_id, key),) = db.issue(valid_until=T0 + timedelta(seconds=100), assign_to=db.company_id)
    till = db.add_device("till-1")
    bind(db, till, key)
    (lease,) = db.leases("till-1")
    assert lease.expires_at == int((T0 + timedelta(seconds=100)).timestamp())
    with Session(db.engine) as session, session.begin():
        assert sweep(session, T0 + timedelta(seconds=101), db.policy).expired == 1
    assert db.leases("till-1") == [] and db.events(licence_id)[-1].action == "expired"


def test_revocation_drops_the_lease(db: LicenceDb) -> None:
    ((licence_id, key),) = db.issue(assign_to=db.company_id)
    till = db.add_device("till-1")
    bind(db, till, key)
    with Session(db.engine) as session, session.begin():
        book.revoke(session, licence_id, by_user=db.admin_user_id, now=T0, reason="unpaid")
    assert db.leases("till-1") == []
    assert refused(bind, db, till, key) == "licence.revoked"
    event = db.events(licence_id)[-1]
    assert (event.action, event.from_state, event.to_state, event.from_device_id, event.detail) == (
        "revoked",
        "bound",
        "revoked",
        "till-1",
        "unpaid",
    )


def test_moves_are_rate_limited_per_hour_not_in_total(db: LicenceDb) -> None:
    ((licence_id, key),) = db.issue(assign_to=db.company_id)
    tills = [db.add_device(f"till-{n}") for n in range(6)]
    bind(db, tills[0], key)
    for n in range(1, 4):  # retargets count as moves too
        assert bind(db, tills[n], key, T0 + timedelta(minutes=n)).changed
    assert refused(bind, db, tills[4], key, T0 + timedelta(minutes=5)) == "licence.move_rate_limited"
    assert db.licence(licence_id).releasing_to_device_id == "till-3"
    assert bind(db, tills[4], key, T0 + timedelta(minutes=62)).changed  # an hour later
    assert release(db, tills[0], licence_id, 1, tills[0].receipt(licence_id, 1), T0 + timedelta(minutes=63))
    licence = db.licence(licence_id)
    assert (licence.device_id, licence.epoch) == ("till-4", 2)
    actions = [e.action for e in db.events(licence_id)]
    assert actions.count("move_retargeted") == 3


def test_release_on_the_device_frees_the_licence(db: LicenceDb) -> None:
    ((licence_id, key),) = db.issue(assign_to=db.company_id)
    old, new = db.add_device("till-old"), db.add_device("till-new")
    bind(db, old, key)
    report(db, old, [], T0 + timedelta(seconds=5), tombstones=[(licence_id, 1, old.receipt(licence_id, 1))])
    assert db.licence(licence_id).state == "assigned" and db.leases("till-old") == []
    assert bind(db, new, key).epoch == 2


def test_ingest_routes_licence_messages_and_refuses_with_the_reason(db: LicenceDb) -> None:
    import uuid

    from cloud_api.ingest.apply import apply_batch
    from cloud_api.licences.policy import use_policy

    ((licence_id, key),) = db.issue(assign_to=db.company_id)
    till = db.add_device("till-1")
    boot = uuid.uuid4()

    def message(body, seq):
        envelope = kc.up_message(body, device_id="till-1", seq=seq, boot_id=boot, clock_trusted=True)
        publication = kc.publication(envelope)
        return kc.parse_message(publication.topic, publication.payload)

    typo = key[:-1] + ("0" if key[-1] != "0" else "1")
    batch = [
        message(kc.BindRequest(kind="bind_request", licence_key=typo, device_public_key=till.public_text), 1),
        message(kc.BindRequest(kind="bind_request", licence_key=key, device_public_key=till.public_text), 2),
    ]
    use_policy(db.policy)
    try:
        with Session(db.engine) as session, session.begin():
            plan = apply_batch(session, batch)
    finally:
        use_policy(None)
    assert (plan.applied, plan.rejected) == (1, 1)
    (rejection,) = plan.devices["till-1"].rejected.values()
    assert rejection.reason == "licence.key_invalid" and "check character" in rejection.detail
    assert db.licence(licence_id).state == "bound" and db.leases("till-1")[0].epoch == 1


# ------------------------------------------------------------------ which company holds it
def release_to_partner(db: LicenceDb, licence_id: str, company_id: int, now=T0):
    with Session(db.engine) as session, session.begin():
        return book.release_to_partner(
            session, licence_id, company_id, by_user=db.admin_user_id, now=now, policy=db.policy
        ).state


def test_a_key_assigned_to_a_company_is_refused_on_another_companys_terminal(db: LicenceDb) -> None:
    ((licence_id, key),) = db.issue(assign_to=db.company_id)
    mine, theirs = db.add_device("till-a"), db.add_device("till-b", db.other_company_id)
    with pytest.raises(LicenceRefused) as free:
        bind(db, theirs, key)
    assert free.value.code == "licence.other_company"
    assert "ask the company that holds it to release it" in free.value.message
    assert str(db.company_id) not in free.value.message  # another tenant: not named
    bind(db, mine, key)
    document = db.doc("till-a")
    # Bound, and asked again later (devices resend): refused each time, nothing moves.
    for seconds in (10, 20):
        assert refused(bind, db, theirs, key, T0 + timedelta(seconds=seconds)) == "licence.other_company"
    licence = db.licence(licence_id)
    assert (licence.state, licence.device_id, licence.company_id, licence.epoch) == (
        "bound",
        "till-a",
        db.company_id,
        1,
    )
    assert db.doc("till-a") == document and db.doc("till-b") is None and db.release_commands("till-a") == []
    assert [e.action for e in db.events(licence_id)] == ["issued", "assigned", "bound"]
    # The holder's own move to the other company's terminal is no different.
    with Session(db.engine) as session, session.begin():
        theirs_registered = session.get(Device, "till-b")
        theirs_registered.public_key = theirs.public_text
    with Session(db.engine) as session, session.begin(), pytest.raises(LicenceRefused) as moved:
        book.move(session, licence_id, "till-b", by_user=db.admin_user_id, now=T0, policy=db.policy)
    assert moved.value.code == "not_found" and db.licence(licence_id).device_id == "till-a"


def test_unsealed_stock_belongs_to_the_first_company_and_stays_there(db: LicenceDb) -> None:
    ((licence_id, key),) = db.issue(unseal=True)
    assert db.licence(licence_id).company_id is None
    b1, b2 = db.add_device("till-b1", db.other_company_id), db.add_device("till-b2", db.other_company_id)
    c1 = db.add_device("till-c1", db.third_company_id)
    assert bind(db, b1, key).state == "bound"
    licence = db.licence(licence_id)
    assert (licence.company_id, licence.device_id) == (db.other_company_id, "till-b1")
    assert db.leases("till-b1")[0].company_id == db.other_company_id
    assert refused(bind, db, c1, key, T0 + timedelta(seconds=5)) == "licence.other_company"
    # B moves it among its own terminals; C still cannot take it, nor can B's release go to C.
    assert bind(db, b2, key, T0 + timedelta(seconds=10)).state == "releasing"
    assert refused(bind, db, c1, key, T0 + timedelta(seconds=11)) == "licence.other_company"
    assert db.licence(licence_id).releasing_to_device_id == "till-b2"
    assert release(db, b1, licence_id, 1, b1.receipt(licence_id, 1), T0 + timedelta(seconds=12))
    licence = db.licence(licence_id)
    assert (licence.state, licence.device_id, licence.company_id, licence.epoch) == (
        "bound",
        "till-b2",
        db.other_company_id,
        2,
    )
    # Released on the terminal itself, the licence is free but still B's.
    report(db, b2, [], T0 + timedelta(seconds=20), tombstones=[(licence_id, 2, b2.receipt(licence_id, 2))])
    assert (db.licence(licence_id).state, db.licence(licence_id).company_id) == ("assigned", db.other_company_id)
    assert refused(bind, db, c1, key, T0 + timedelta(seconds=21)) == "licence.other_company"


def test_the_holder_releases_a_bound_licence_then_another_company_binds_it(db: LicenceDb) -> None:
    ((licence_id, key),) = db.issue(assign_to=db.company_id)
    a1, c1 = db.add_device("till-a1"), db.add_device("till-c1", db.third_company_id)
    bind(db, a1, key)
    assert release_to_partner(db, licence_id, db.company_id, T0 + timedelta(seconds=10)) == "releasing"
    licence = db.licence(licence_id)
    # The terminal is told to stop first, as in a move; the company holds it until then.
    assert (licence.company_id, licence.releasing_from_device_id, licence.releasing_to_device_id) == (
        db.company_id,
        "till-a1",
        None,
    )
    (command,) = db.release_commands("till-a1")
    assert command.args == {"licence_id": licence_id, "epoch": 1} and db.leases("till-a1") == []
    assert release_to_partner(db, licence_id, db.company_id, T0 + timedelta(seconds=11)) == "releasing"  # again
    assert len(db.release_commands("till-a1")) == 1
    with pytest.raises(LicenceRefused) as early:
        bind(db, c1, key, T0 + timedelta(seconds=12))
    assert early.value.code == "licence.returning" and "released it to the partner" in early.value.message
    assert refused(bind, db, a1, key, T0 + timedelta(seconds=12)) == "licence.returning"
    report(db, a1, [(licence_id, 1)], T0 + timedelta(seconds=200))  # never renewed meanwhile
    assert db.leases("till-a1") == []

    assert release(db, a1, licence_id, 1, a1.receipt(licence_id, 1), T0 + timedelta(seconds=20)) is True
    licence = db.licence(licence_id)
    assert (licence.state, licence.company_id, licence.device_id, licence.lease_token) == ("assigned", None, None, None)
    assert licence.key_revealed_at is not None  # its key was seen: unsealed stock, not sealed
    assert release(db, a1, licence_id, 1, a1.receipt(licence_id, 1), T0 + timedelta(seconds=21)) is False  # resend
    outcome = bind(db, c1, key, T0 + timedelta(seconds=30))
    assert (outcome.state, outcome.epoch) == ("bound", 2)
    assert db.licence(licence_id).company_id == db.third_company_id
    assert db.leases("till-c1")[0].company_id == db.third_company_id
    assert refused(bind, db, a1, key, T0 + timedelta(seconds=31)) == "licence.other_company"
    trail = [
        (e.actor, e.action, e.from_state, e.to_state, e.from_device_id, e.to_device_id, e.epoch)
        for e in db.events(licence_id)
    ]
    user = f"user:{db.admin_user_id}"
    assert trail[3:] == [
        (user, "return_requested", "bound", "releasing", "till-a1", None, 1),
        ("device:till-a1", "released", "releasing", "assigned", "till-a1", None, 1),
        ("device:till-c1", "bound", "assigned", "bound", None, "till-c1", 2),
    ]
    assert "back in the partner's stock" in db.events(licence_id)[4].detail
    # No longer the company's: a repeat of its release finds nothing.
    with pytest.raises(LicenceRefused) as gone:
        release_to_partner(db, licence_id, db.company_id)
    assert gone.value.code == "not_found"


def test_a_silent_terminal_gives_the_released_licence_back_after_its_lease(db: LicenceDb) -> None:
    ((licence_id, key),) = db.issue(assign_to=db.company_id)
    a1 = db.add_device("till-a1")
    bind(db, a1, key)
    release_to_partner(db, licence_id, db.company_id, T0 + timedelta(seconds=100))
    due = T0 + timedelta(seconds=LEASE_S + MARGIN_S)
    assert db.licence(licence_id).release_deadline.replace(tzinfo=T0.tzinfo) == due
    with Session(db.engine) as session, session.begin():
        assert sweep(session, due - timedelta(seconds=1), db.policy).granted == 0
    assert db.licence(licence_id).company_id == db.company_id
    with Session(db.engine) as session, session.begin():
        assert sweep(session, due, db.policy).granted == 1
    licence = db.licence(licence_id)
    assert (licence.state, licence.company_id, licence.epoch) == ("assigned", None, 1)
    last = db.events(licence_id)[-1]
    assert (last.actor, last.action, last.to_state, last.to_device_id) == (
        "system",
        "released_by_timeout",
        "assigned",
        None,
    )
    assert db.leases("till-a1") == []


def test_releasing_a_free_or_moving_licence(db: LicenceDb) -> None:
    (free_id, free_key), (moving_id, moving_key) = db.issue(2, assign_to=db.company_id)
    a1, a2 = db.add_device("till-a1"), db.add_device("till-a2")
    b1 = db.add_device("till-b1", db.other_company_id)
    # Never bound: back in the stock at once, and any company's terminal binds it.
    assert release_to_partner(db, free_id, db.company_id) == "assigned"
    last = db.events(free_id)[-1]
    assert (last.action, last.from_state, last.to_state, db.licence(free_id).company_id) == (
        "returned",
        "assigned",
        "assigned",
        None,
    )
    assert bind(db, b1, free_key).state == "bound" and db.licence(free_id).company_id == db.other_company_id
    # Moving from a1 to a2: a2 never gets it; it returns once a1 lets go.
    bind(db, a1, moving_key)
    bind(db, a2, moving_key, T0 + timedelta(seconds=5))
    assert release_to_partner(db, moving_id, db.company_id, T0 + timedelta(seconds=6)) == "releasing"
    licence = db.licence(moving_id)
    assert (licence.releasing_from_device_id, licence.releasing_to_device_id) == ("till-a1", None)
    assert db.events(moving_id)[-1].action == "return_requested" and len(db.release_commands("till-a1")) == 1
    with Session(db.engine) as session, session.begin(), pytest.raises(LicenceRefused) as move:
        book.move(session, moving_id, "till-a2", by_user=db.admin_user_id, now=T0, policy=db.policy)
    assert move.value.code == "licence.returning"
    assert release(db, a1, moving_id, 1, a1.receipt(moving_id, 1), T0 + timedelta(seconds=7))
    assert (db.licence(moving_id).state, db.licence(moving_id).company_id) == ("assigned", None)
    assert db.doc("till-a2") is None
    # Another company's licence, a revoked one: nothing to release.
    with pytest.raises(LicenceRefused) as foreign:
        release_to_partner(db, free_id, db.company_id)
    assert foreign.value.code == "not_found"
    ((revoked_id, _key),) = db.issue(assign_to=db.company_id)
    with Session(db.engine) as session, session.begin():
        book.revoke(session, revoked_id, by_user=db.admin_user_id, now=T0)
    with pytest.raises(LicenceRefused) as revoked:
        release_to_partner(db, revoked_id, db.company_id)
    assert revoked.value.code == "licence.revoked"


def test_a_locked_licence_stays_locked_on_sqlite_too(tmp_path: Path) -> None:
    """SQLite ignores SELECT ... FOR UPDATE: reading a licence to change it takes the database's
    write lock, so a second change (a partner's assign racing a device's bind) waits instead of
    acting on what it read before the first one committed."""
    from sqlalchemy import create_engine

    from cloud_api.licences.records import locked_licence

    with licence_database("sqlite", tmp_path) as db:
        ((licence_id, _key),) = db.issue()
        impatient = create_engine(db.engine.url, connect_args={"timeout": 0.05})  # no waiting for the lock
        with Session(db.engine) as first, Session(impatient) as second:
            assert locked_licence(first, licence_id) is not None  # holds the lock until it ends
            with pytest.raises(OperationalError, match="database is locked"):
                locked_licence(second, licence_id)
            second.rollback()
            first.commit()
            assert locked_licence(second, licence_id) is not None, "free once the first change ended"
            second.rollback()
        impatient.dispose()
