"""Pairing by code through the HTTP API, on SQLite and PostgreSQL: a terminal registers, a company
admin claims its code into a point of sale, the terminal's signed poll returns a certificate
signed by the device CA. Strangers can neither take over, fetch nor claim what is not theirs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy import update

from broker.contract.pairing import check_character, format_pairing_code
from cloud_api.pairing.models import PairingRegistration
from tests.cloud.api_support import BACKENDS, Api, error_code
from tests.cloud.pairing_support import Terminal, claim, make_pki, pairing_api, poll, register, store


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pki(tmp_path_factory.mktemp("pairing-pki"))


@pytest.fixture(scope="module", params=BACKENDS)
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, pki: Path) -> Iterator[Api]:
    with pairing_api(request.param, tmp_path_factory.mktemp("pairing"), pki) as value:
        yield value


def spki(key: object) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)  # type: ignore[attr-defined]


def test_register_claim_and_fetch_the_certificate(api: Api, pki: Path) -> None:
    cid, admin = api.company("Pairing Co")
    pos = store(api, admin, cid, "P-MAIN")
    till = Terminal("pair-till-1")
    first = register(api, till).json()
    assert first["state"] == "pending" and first["pairing_code"] == till.code and first["device_id"] == "pair-till-1"
    assert datetime.fromisoformat(first["expires_at"]) > datetime.now(UTC) + timedelta(hours=23)
    again = register(api, till, expect=200).json()  # a restart before the claim: same registration
    assert again["pairing_code"] == till.code and again["expires_at"] == first["expires_at"]
    waiting = poll(api, till).json()
    assert waiting["state"] == "pending" and waiting["credentials"] is None

    claimed = claim(api, admin, cid, format_pairing_code(till.code).lower(), pos).json()  # as a person types it
    assert (claimed["device_id"], claimed["company_id"], claimed["point_of_sale_id"]) == ("pair-till-1", cid, pos)
    listed = api.call("GET", f"/companies/{cid}/devices", admin, 200).json()
    assert [(d["device_id"], d["paired"], d["point_of_sale_id"]) for d in listed] == [("pair-till-1", True, pos)]

    reply = poll(api, till).json()
    assert reply["state"] == "claimed" and reply["expires_at"] is None
    credentials = reply["credentials"]
    assert (credentials["broker_host"], credentials["broker_port"], credentials["point_of_sale"]) == (
        "mqtt.example.com",
        8883,
        "P-MAIN",
    )
    certificate = x509.load_pem_x509_certificate(credentials["certificate"].encode())
    ca = x509.load_pem_x509_certificate((pki / "device-ca.crt").read_bytes())
    certificate.verify_directly_issued_by(ca)
    assert credentials["ca_certificate"] == (pki / "device-ca.crt").read_text(), "the device CA signed it"
    assert credentials["broker_ca_certificates"] == (pki / "cloud-ca.crt").read_text(), (
        "the broker's certificate is the cloud CA's"
    )
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "pair-till-1"
    assert spki(certificate.public_key()) == spki(till.tls_key.public_key()), "the device's own key, never a new one"
    assert certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    assert certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert format(certificate.serial_number, "x") == claimed["certificate_serial"]

    events = api.call("GET", f"/companies/{cid}/pairing/events", admin, 200).json()
    assert [e["event"] for e in events] == ["certificate_delivered", "claimed"]
    me = api.call("GET", "/me", admin, 200).json()
    assert events[1]["user_id"] == me["id"] and events[1]["point_of_sale_id"] == pos
    poll(api, till)  # fetching again works and is not audited twice
    assert len(api.call("GET", f"/companies/{cid}/pairing/events", admin, 200).json()) == 2


def test_a_paired_device_id_cannot_be_registered_by_a_stranger(api: Api) -> None:
    cid, admin = api.company("Paired Co")
    pos = store(api, admin, cid)
    till = Terminal("pair-till-2")
    register(api, till)
    claim(api, admin, cid, till.code, pos)
    stranger = Terminal("pair-till-2")
    assert error_code(register(api, stranger, expect=409)) == "device_paired"
    assert error_code(poll(api, stranger, expect=401)) == "bad_signature"
    # the device itself (same identity key) may ask again, e.g. after losing a reply
    assert register(api, till, expect=200).json()["state"] == "claimed"


def test_a_stranger_cannot_replace_fetch_or_refresh_a_pending_registration(api: Api) -> None:
    cid, admin = api.company("Pending Co")
    pos = store(api, admin, cid)
    till = Terminal("pair-till-3")
    register(api, till)
    stranger = Terminal("pair-till-3")
    reply = register(api, stranger, expect=409)
    assert error_code(reply) == "device_id_taken" and "expires at" in reply.json()["error"]["message"]
    assert error_code(poll(api, stranger, expect=401)) == "bad_signature"
    # a poll signed by the real key but sent for another device id proves nothing about that id
    forged = till.poll() | {"device_id": "pair-till-other"}
    assert api.client.post("/pairing/poll", json=forged).status_code == 404
    # the stranger's code is unknown; the real one still claims the real device
    assert error_code(claim(api, admin, cid, stranger.code, pos, 404)) == "pairing_code_unknown"
    assert claim(api, admin, cid, till.code, pos).json()["device_id"] == "pair-till-3"
    certificate = x509.load_pem_x509_certificate(poll(api, till).json()["credentials"]["certificate"].encode())
    assert spki(certificate.public_key()) == spki(till.tls_key.public_key())


def test_the_same_device_may_change_its_code_before_the_claim(api: Api) -> None:
    cid, admin = api.company("Recode Co")
    pos = store(api, admin, cid)
    till = Terminal("pair-till-4")
    old = till.code
    register(api, till)
    other = Terminal("pair-till-5")
    other.code = till.code = Terminal("x").code
    register(api, till, expect=200)
    assert error_code(register(api, other, expect=409)) == "pairing_code_taken", "codes are unique while waiting"
    assert error_code(claim(api, admin, cid, old, pos, 404)) == "pairing_code_unknown"
    assert claim(api, admin, cid, till.code, pos).json()["device_id"] == "pair-till-4"


def test_claims_are_tenant_scoped(api: Api) -> None:
    cid_a, admin_a = api.company("Claim A")
    cid_b, admin_b = api.company("Claim B")
    pos_a, pos_b = store(api, admin_a, cid_a), store(api, admin_b, cid_b)
    till = Terminal("pair-till-6")
    register(api, till)
    assert error_code(claim(api, admin_a, cid_a, till.code, pos_b, 404)) == "not_found", "B's store is not A's"
    assert error_code(claim(api, admin_a, cid_b, till.code, pos_b, 404)) == "not_found", "B is invisible to A"
    viewer = api.user("company_viewer", company_id=cid_a)
    assert error_code(claim(api, viewer, cid_a, till.code, pos_a, 403)) == "forbidden"
    pid, partner = api.partner("Claim partner")
    api.link(admin_a, cid_a, partner, pid)
    assert error_code(claim(api, partner, cid_a, till.code, pos_a, 403)) == "forbidden"
    assert poll(api, till).json()["state"] == "pending", "none of that claimed it"
    claim(api, admin_b, cid_b, till.code, pos_b)
    assert error_code(claim(api, admin_a, cid_a, till.code, pos_a, 409)) == "already_claimed"
    assert error_code(claim(api, admin_b, cid_b, till.code, pos_b, 409)) == "already_claimed"
    assert api.call("GET", f"/companies/{cid_a}/devices", admin_a, 200).json() == []
    api.call("GET", f"/companies/{cid_a}/devices/pair-till-6", admin_a, 404)
    assert api.call("GET", f"/companies/{cid_b}/devices/pair-till-6", admin_b, 200).json()["paired"] is True
    assert [e["event"] for e in api.call("GET", f"/companies/{cid_a}/pairing/events", admin_a, 200).json()] == [
        "claim_failed"
    ]
    api.call("GET", f"/companies/{cid_b}/pairing/events", admin_a, 404)


def test_owner_admin_may_claim_for_a_company(api: Api) -> None:
    cid, admin = api.company("Owner claims")
    pos = store(api, admin, cid)
    till = Terminal("pair-till-7")
    register(api, till)
    assert claim(api, api.owner_token, cid, till.code, pos).json()["company_id"] == cid


def test_an_expired_code_cannot_be_claimed_and_the_device_registers_again(api: Api) -> None:
    cid, admin = api.company("Expiry Co")
    pos = store(api, admin, cid)
    till = Terminal("pair-till-8")
    register(api, till)
    with api.engine.begin() as conn:
        conn.execute(
            update(PairingRegistration)
            .where(PairingRegistration.device_id == "pair-till-8")
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert error_code(claim(api, admin, cid, till.code, pos, 410)) == "pairing_code_expired"
    assert error_code(poll(api, till, expect=410)) == "registration_expired"
    stranger = Terminal("pair-till-8")
    assert error_code(poll(api, stranger, expect=401)) == "bad_signature"
    assert register(api, till).json()["state"] == "pending", "a new registration, same code"
    assert claim(api, admin, cid, till.code, pos).json()["device_id"] == "pair-till-8"


def test_mistyped_and_unknown_codes(api: Api) -> None:
    cid, admin = api.company("Typo Co")
    pos = store(api, admin, cid)
    till = Terminal("pair-till-9")
    register(api, till)
    typo = till.code[:3] + ("X" if till.code[3] != "X" else "Y") + till.code[4:]
    reply = claim(api, admin, cid, typo, pos, 422)
    assert error_code(reply) == "invalid_request" and "check character" in reply.json()["error"]["message"]
    unknown = "ABCDEFGH" + check_character("ABCDEFGH")
    assert error_code(claim(api, admin, cid, unknown, pos, 404)) == "pairing_code_unknown"
    for bad in ("", "ABC", "ABCDEFGHU", "ABCD EFGH !", "x" * 40):
        assert error_code(claim(api, admin, cid, bad, pos, 422)) == "invalid_request", bad
    # I/L read as 1 and O as 0: a code with 1s and 0s typed with letters still claims
    assert (
        claim(api, admin, cid, till.code.replace("1", "l").replace("0", "O"), pos).json()["device_id"] == "pair-till-9"
    )


def test_failed_claims_are_limited_per_company(api: Api) -> None:
    cid, admin = api.company("Guesser Co")
    pos = store(api, admin, cid)
    for n in range(10):
        guess = f"GQESS{n:03d}"
        claim(api, admin, cid, guess + check_character(guess), pos, 404)
    till = Terminal("pair-till-10")
    register(api, till)
    reply = claim(api, admin, cid, till.code, pos, 429)
    assert error_code(reply) == "too_many_attempts" and int(reply.headers["Retry-After"]) > 0
    other_cid, other_admin = api.company("Honest Co")
    claim(api, other_admin, other_cid, till.code, store(api, other_admin, other_cid))
