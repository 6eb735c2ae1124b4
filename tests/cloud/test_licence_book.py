"""The licence book's device-driven transitions on real databases (SQLite file, PostgreSQL):
bind, move with receipt or by timeout, renewals, revocation, refusals."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.orm import Session

from agent.licence.lease import accept_token
from broker import contract as kc
from cloud_api.licences import binding, book
from cloud_api.licences.records import LicenceRefused
from cloud_api.licences.sweeper import sweep
from tests.cloud.api_support import BACKENDS
from tests.cloud.licence_support import LEASE_S, MARGIN_S, T0, DeviceKey, LicenceDb, licence_database, short_policy


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LicenceDb]:
    with licence_database(request.param, tmp_path) as value:
        yield value


def bind(db: LicenceDb, device: DeviceKey, key: str, now=T0, policy=None) -> binding.BindOutcome:  # noqa: ANN001
    with Session(db.engine) as session, session.begin():
        return binding.bind(session, device.device_id, key, device.public_text, now, policy or db.policy)


def release(db: LicenceDb, device: DeviceKey, licence_id: str, epoch: int, receipt: str, now=T0) -> bool:  # noqa: ANN001
    with Session(db.engine) as session, session.begin():
        return binding.accept_release(session, device.device_id, licence_id, epoch, receipt, now, db.policy)


def refused(call, *args) -> str:  # noqa: ANN001
    with pytest.raises(LicenceRefused) as caught:
        call(*args)
    return caught.value.code


def report(db: LicenceDb, device: DeviceKey, leases: list[tuple[str, int]], now, tombstones=(), policy=None) -> None:  # noqa: ANN001
    body = kc.LeaseReport(kind="lease_report", leases=[
        kc.HeldLease(licence_id=lid, epoch=epoch, lease_expires_at=now) for lid, epoch in leases],
        tombstones=[kc.Tombstone(licence_id=lid, epoch=epoch, receipt=r) for lid, epoch, r in tombstones])
    with Session(db.engine) as session, session.begin():
        binding.apply_lease_report(session, device.device_id, body, now, policy or db.policy)


def test_bind_free_licence_then_again_is_idempotent(db: LicenceDb) -> None:
    (licence_id, key), = db.issue(assign_to=db.company_id)
    till = db.add_device("till-1")
    outcome = bind(db, till, key)
    assert (outcome.state, outcome.epoch, outcome.changed) == ("bound", 1, True)
    lease, = db.leases("till-1")
    claims = accept_token(db.doc("till-1")[1][0], device_id="till-1", device_key=till.fingerprint,
                          trusted_keys=db.trusted, highest_epoch=0, now_wall=T0.timestamp())
    assert claims == lease and (lease.licence_id, lease.epoch, lease.company_id) == (licence_id, 1, db.company_id)
    assert lease.expires_at - lease.issued_at == LEASE_S and lease.entitlements == {"seats": 1}
    again = bind(db, till, key, T0 + timedelta(seconds=5))
    assert (again.state, again.epoch, again.changed) == ("bound", 1, False)
    assert [e.action for e in db.events(licence_id)] == ["issued", "assigned", "bound"]


def test_typed_key_forms_and_refusals(db: LicenceDb) -> None:
    (licence_id, key), = db.issue(assign_to=db.company_id)
    till = db.add_device("till-1")
    typed = "-".join(key[i:i + 4] for i in range(0, 16, 4)).lower().replace("1", "l").replace("0", "o")
    assert bind(db, till, typed).licence_id == licence_id
    wrong_check = key[:-1] + ("0" if key[-1] != "0" else "1")
    assert refused(bind, db, till, wrong_check) == "licence.key_invalid"
    assert refused(bind, db, till, "NOT-A-KEY") == "licence.key_invalid"
    from broker.contract.licence import new_licence_key
    assert refused(bind, db, till, new_licence_key()) == "licence.key_unknown"
    (_sealed_id, sealed_key), = db.issue()
    assert refused(bind, db, till, sealed_key) == "licence.not_assigned"
    impostor = DeviceKey("till-1")  # same id, another key than the registered one
    assert refused(bind, db, impostor, key) == "licence.wrong_device_key"
    (_old_id, old_key), = db.issue(valid_until=T0 + timedelta(days=1), assign_to=db.company_id)
    assert refused(bind, db, till, old_key, T0 + timedelta(days=2)) == "licence.expired"


def test_move_with_receipt_grants_next_epoch_and_keeps_the_audit(db: LicenceDb) -> None:
    (licence_id, key), = db.issue(assign_to=db.company_id)
    old, new = db.add_device("till-old"), db.add_device("till-new", db.other_company_id)
    bind(db, old, key)
    moving = bind(db, new, key, T0 + timedelta(seconds=10))
    assert (moving.state, moving.epoch) == ("releasing", 1)
    licence = db.licence(licence_id)
    assert (licence.releasing_from_device_id, licence.releasing_to_device_id) == ("till-old", "till-new")
    command, = db.release_commands("till-old")
    assert command.args == {"licence_id": licence_id, "epoch": 1}
    assert db.leases("till-old") == [] and db.doc("till-new") is None
    bind(db, new, key, T0 + timedelta(seconds=11))  # asked again: nothing new
    assert len(db.release_commands("till-old")) == 1
    # Not the old device's renewal either: releasing is never renewed.
    report(db, old, [(licence_id, 1)], T0 + timedelta(seconds=200))
    assert db.leases("till-old") == []

    assert release(db, old, licence_id, 1, old.receipt(licence_id, 1), T0 + timedelta(seconds=20)) is True
    licence = db.licence(licence_id)
    assert (licence.state, licence.device_id, licence.epoch, licence.company_id) == ("bound", "till-new", 2, db.other_company_id)
    lease, = db.leases("till-new")
    assert (lease.device_id, lease.epoch, lease.device_key) == ("till-new", 2, new.fingerprint)
    assert db.leases("till-old") == []
    trail = [(e.actor, e.action, e.from_state, e.to_state, e.from_device_id, e.to_device_id, e.epoch)
             for e in db.events(licence_id)]
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
    (licence_id, key), = db.issue(assign_to=db.company_id)
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
    (licence_id, key), = db.issue(assign_to=db.company_id)
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
    assert (last.actor, last.action, last.detail) == ("system", "released_by_timeout", "old device silent; its lease ran out")
    assert [lease.epoch for lease in db.leases("till-new")] == [2]


def test_lease_report_renews_and_drops_what_is_no_longer_granted(db: LicenceDb) -> None:
    (licence_id, key), = db.issue(assign_to=db.company_id)
    till = db.add_device("till-1")
    bind(db, till, key)
    first, = db.leases("till-1")
    version = db.doc("till-1")[0]
    report(db, till, [(licence_id, 1)], T0 + timedelta(seconds=10))  # too soon to re-sign
    assert db.doc("till-1")[0] == version
    later = T0 + timedelta(seconds=300)
    report(db, till, [(licence_id, 1), ("lic_gone", 4)], later)
    renewed, = db.leases("till-1")
    assert renewed.issued_at == int(later.timestamp()) and renewed.expires_at > first.expires_at
    assert db.licence(licence_id).lease_expires_at.replace(tzinfo=T0.tzinfo).timestamp() == renewed.expires_at


def test_reports_after_a_reconnect_storm_do_not_re_sign_young_leases(db: LicenceDb) -> None:
    """Devices report on every connect; with the default hourly renewal a lease issued minutes
    ago is kept (no signature, no document), and one past half the period is renewed."""
    hourly = short_policy(db.cloud_key, lease_s=7 * 86400, renew_after_s=3600)
    (licence_id, key), = db.issue(assign_to=db.company_id)
    till = db.add_device("till-1")
    bind(db, till, key, policy=hourly)
    first, = db.leases("till-1")
    version = db.doc("till-1")[0]
    report(db, till, [(licence_id, 1)], T0 + timedelta(minutes=5), policy=hourly)  # the broker restarted
    report(db, till, [(licence_id, 1)], T0 + timedelta(minutes=29), policy=hourly)
    assert db.doc("till-1")[0] == version and db.leases("till-1") == [first]
    later = T0 + timedelta(minutes=31)
    report(db, till, [(licence_id, 1)], later, policy=hourly)
    renewed, = db.leases("till-1")
    assert db.doc("till-1")[0] > version and renewed.issued_at == int(later.timestamp())


def test_lease_never_outlives_the_licence_and_sweep_drops_it(db: LicenceDb) -> None:
    (licence_id, key), = db.issue(valid_until=T0 + timedelta(seconds=100), assign_to=db.company_id)
    till = db.add_device("till-1")
    bind(db, till, key)
    lease, = db.leases("till-1")
    assert lease.expires_at == int((T0 + timedelta(seconds=100)).timestamp())
    with Session(db.engine) as session, session.begin():
        assert sweep(session, T0 + timedelta(seconds=101), db.policy).expired == 1
    assert db.leases("till-1") == [] and db.events(licence_id)[-1].action == "expired"


def test_revocation_drops_the_lease(db: LicenceDb) -> None:
    (licence_id, key), = db.issue(assign_to=db.company_id)
    till = db.add_device("till-1")
    bind(db, till, key)
    with Session(db.engine) as session, session.begin():
        book.revoke(session, licence_id, by_user=db.admin_user_id, now=T0, reason="unpaid")
    assert db.leases("till-1") == []
    assert refused(bind, db, till, key) == "licence.revoked"
    event = db.events(licence_id)[-1]
    assert (event.action, event.from_state, event.to_state, event.from_device_id, event.detail) == (
        "revoked", "bound", "revoked", "till-1", "unpaid")


def test_moves_are_rate_limited_per_hour_not_in_total(db: LicenceDb) -> None:
    (licence_id, key), = db.issue(assign_to=db.company_id)
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
    (licence_id, key), = db.issue(assign_to=db.company_id)
    old, new = db.add_device("till-old"), db.add_device("till-new")
    bind(db, old, key)
    report(db, old, [], T0 + timedelta(seconds=5), tombstones=[(licence_id, 1, old.receipt(licence_id, 1))])
    assert db.licence(licence_id).state == "assigned" and db.leases("till-old") == []
    assert bind(db, new, key).epoch == 2


def test_ingest_routes_licence_messages_and_refuses_with_the_reason(db: LicenceDb) -> None:
    import uuid

    from cloud_api.ingest.apply import apply_batch
    from cloud_api.licences.policy import use_policy

    (licence_id, key), = db.issue(assign_to=db.company_id)
    till = db.add_device("till-1")
    boot = uuid.uuid4()

    def message(body, seq):  # noqa: ANN001, ANN202
        envelope = kc.up_message(body, device_id="till-1", seq=seq, boot_id=boot, clock_trusted=True)
        publication = kc.publication(envelope)
        return kc.parse_message(publication.topic, publication.payload)

    typo = key[:-1] + ("0" if key[-1] != "0" else "1")
    batch = [message(kc.BindRequest(kind="bind_request", licence_key=typo, device_public_key=till.public_text), 1),
             message(kc.BindRequest(kind="bind_request", licence_key=key, device_public_key=till.public_text), 2)]
    use_policy(db.policy)
    try:
        with Session(db.engine) as session, session.begin():
            plan = apply_batch(session, batch)
    finally:
        use_policy(None)
    assert (plan.applied, plan.rejected) == (1, 1)
    rejection, = plan.devices["till-1"].rejected.values()
    assert rejection.reason == "licence.key_invalid" and "check character" in rejection.detail
    assert db.licence(licence_id).state == "bound" and db.leases("till-1")[0].epoch == 1
