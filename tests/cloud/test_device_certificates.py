"""Device certificates after pairing, on SQLite and PostgreSQL: renewal by the paired device
(signed with its identity key), revocation by one call of its company, and the device CA's CRL
that the broker reads. Other companies, viewers and partners can do none of it."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from broker.contract.pairing import renewal_request
from tests.cloud.api_support import BACKENDS, Api, error_code
from tests.cloud.pairing_support import Terminal, claim, csr_pem, make_pki, pairing_api, poll, register, store


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pki(tmp_path_factory.mktemp("certificates-pki"))


@pytest.fixture(scope="module", params=BACKENDS)
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, pki: Path) -> Iterator[Api]:
    directory = tmp_path_factory.mktemp("certificates")
    with pairing_api(
        request.param,
        directory,
        pki,
        device_crl_file=directory / "crl" / "device-crl.pem",
        device_cert_renew_interval_s=0,
    ) as value:
        value.crl_file = directory / "crl" / "device-crl.pem"  # type: ignore[attr-defined]
        yield value


def paired(api: Api, device_id: str) -> tuple[Terminal, int, str, x509.Certificate]:
    """A terminal claimed by a new company: (terminal, company id, admin token, its certificate)."""
    cid, admin = api.company(f"{device_id} Co")
    till = Terminal(device_id)
    register(api, till)
    claim(api, admin, cid, till.code, store(api, admin, cid))
    pem = poll(api, till).json()["credentials"]["certificate"]
    return till, cid, admin, x509.load_pem_x509_certificate(pem.encode())


def renew(api: Api, till: Terminal, *, csr: str | None = None, expect: int | None = 200, now: datetime | None = None):
    body = renewal_request(till.device_id, till.identity, csr or till.csr(), now or datetime.now(UTC)).model_dump(
        mode="json"
    )
    reply = api.client.post("/pairing/renewals", json=body)
    if expect is not None:
        assert reply.status_code == expect, reply.text
    return reply


def crl(api: Api) -> x509.CertificateRevocationList:
    reply = api.client.get("/pki/device-crl.pem")  # no token: a CRL is public
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/pkix-crl"
    return x509.load_pem_x509_crl(reply.content)


def test_a_paired_device_renews_with_its_identity_key(api: Api, pki: Path) -> None:
    till, cid, admin, first = paired(api, "renew-till-1")
    credentials = renew(api, till).json()
    second = x509.load_pem_x509_certificate(credentials["certificate"].encode())
    device_ca = x509.load_pem_x509_certificate((pki / "device-ca.crt").read_bytes())
    second.verify_directly_issued_by(device_ca)
    assert second.serial_number != first.serial_number
    assert second.public_key() == till.tls_key.public_key(), "the device's own key; nothing secret travels"
    assert second.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "renew-till-1"
    assert credentials["broker_ca_certificates"] == (pki / "cloud-ca.crt").read_text()
    listed = api.call("GET", f"/companies/{cid}/devices/renew-till-1/certificates", admin, 200).json()
    assert [(c["serial"], c["source"], c["revoked_at"]) for c in listed] == [
        (format(second.serial_number, "x"), "renewal", None),
        (format(first.serial_number, "x"), "pairing", None),
    ]
    events = api.call("GET", f"/companies/{cid}/pairing/events", admin, 200).json()
    assert events[0]["event"] == "certificate_renewed" and events[0]["device_id"] == "renew-till-1"


def test_renewal_refusals(api: Api) -> None:
    till, _cid, _admin, _cert = paired(api, "renew-till-2")
    stranger = Terminal("renew-till-2")  # same id, another identity key
    assert error_code(renew(api, stranger, expect=401)) == "bad_signature"
    assert error_code(renew(api, Terminal("never-paired"), expect=404)) == "not_paired"
    assert error_code(renew(api, till, csr=csr_pem("renew-till-9", till.tls_key), expect=422)) == "invalid_csr"
    old = datetime.now(UTC) - timedelta(hours=1)
    assert error_code(renew(api, till, now=old, expect=422)) == "clock_skew"
    body = renewal_request(till.device_id, till.identity, till.csr(), datetime.now(UTC)).model_dump(mode="json")
    body["csr"] = csr_pem(till.device_id)  # the proof signs another CSR
    mismatch = api.client.post("/pairing/renewals", json=body)
    assert (
        mismatch.status_code == 422
        and error_code(mismatch) == "invalid_request"
        and "CSR" in mismatch.json()["error"]["message"]
    )


def test_renewals_are_rate_limited_per_device(tmp_path: Path, pki: Path) -> None:
    with pairing_api("sqlite", tmp_path, pki, device_cert_renew_interval_s=600) as api:
        till, _cid, _admin, _cert = paired(api, "busy-till")
        reply = renew(api, till, expect=429)  # the pairing certificate was issued moments ago
        assert error_code(reply) == "rate_limited" and 590 <= int(reply.headers["Retry-After"]) <= 601


def test_one_call_revokes_a_device_and_the_crl_lists_it(api: Api, pki: Path) -> None:
    till, cid, admin, first = paired(api, "stolen-till")
    renewed = x509.load_pem_x509_certificate(renew(api, till).json()["certificate"].encode())
    _other_till, _other_cid, _other_admin, bystander = paired(api, "bystander-till")
    before = crl(api)
    reply = api.call(
        "POST", f"/companies/{cid}/devices/stolen-till/certificates/revoke", admin, 200, json={"reason": "stolen"}
    ).json()
    serials = {format(first.serial_number, "x"), format(renewed.serial_number, "x")}
    assert set(reply["revoked"]) == serials and reply["crl_written_to"] == str(api.crl_file)  # type: ignore[attr-defined]
    after = crl(api)
    device_ca = x509.load_pem_x509_certificate((pki / "device-ca.crt").read_bytes())
    assert after.is_signature_valid(device_ca.public_key()) and after.issuer == device_ca.subject  # type: ignore[arg-type]
    number = after.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert number == reply["crl_number"] > before.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert after.last_update_utc > before.last_update_utc, "OpenSSL prefers the newer CRL by this time"
    assert after.next_update_utc == device_ca.not_valid_after_utc, "no CRL expiry that could lock out the fleet"
    for cert in (first, renewed):
        assert after.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
    assert after.get_revoked_certificate_by_serial_number(bystander.serial_number) is None
    written = api.crl_file  # type: ignore[attr-defined]
    assert x509.load_pem_x509_crl(written.read_bytes()) == after and stat.S_IMODE(written.stat().st_mode) == 0o644
    listed = api.call("GET", f"/companies/{cid}/devices/stolen-till/certificates", admin, 200).json()
    assert all(c["revoked_at"] and c["revocation_reason"] == "stolen" for c in listed)
    # A revoked terminal gets no new certificate, and revoking again changes nothing but the CRL number.
    assert error_code(renew(api, till, expect=403)) == "device_revoked"
    again = api.call("POST", f"/companies/{cid}/devices/stolen-till/certificates/revoke", admin, 200).json()
    assert again["revoked"] == [] and again["crl_number"] == number + 1
    events = [e["event"] for e in api.call("GET", f"/companies/{cid}/pairing/events", admin, 200).json()]
    assert events[:2] == ["certificates_revoked", "certificates_revoked"]


def test_nobody_else_may_see_or_revoke_a_devices_certificates(api: Api) -> None:
    _till, cid, admin, _cert = paired(api, "guarded-till")
    other_cid, other_admin = api.company("Other Co")
    viewer = api.user("company_viewer", company_id=cid)
    pid, partner = api.partner("Linked Partner")
    api.link(admin, cid, partner, pid)
    base = f"/companies/{cid}/devices/guarded-till/certificates"
    for token, expect in ((other_admin, 404), (partner, 403)):
        assert api.call("GET", base, token).status_code == expect
        assert api.call("POST", base + "/revoke", token).status_code == expect
    assert api.call("GET", f"/companies/{other_cid}/devices/guarded-till/certificates", other_admin).status_code == 404
    assert api.call("GET", base, viewer).status_code == 200
    assert error_code(api.call("POST", base + "/revoke", viewer, 403)) == "forbidden"
    assert all(c["revoked_at"] is None for c in api.call("GET", base, admin, 200).json()), "nothing was revoked"


def test_without_a_device_ca_the_crl_and_revocation_say_so(tmp_path: Path) -> None:
    with pairing_api("sqlite", tmp_path, None) as api:
        reply = api.client.get("/pki/device-crl.pem")
        assert reply.status_code == 503 and error_code(reply) == "pairing_unavailable"


def test_a_crl_file_that_cannot_be_written_is_reported_and_the_call_can_be_repeated(tmp_path: Path, pki: Path) -> None:
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the CRL's directory should be")
    with pairing_api("sqlite", tmp_path, pki, device_crl_file=blocked / "device-crl.pem") as api:
        _till, cid, admin, cert = paired(api, "unlucky-till")
        reply = api.call("POST", f"/companies/{cid}/devices/unlucky-till/certificates/revoke", admin, 500)
        assert error_code(reply) == "crl_write_failed" and "call again" in reply.json()["error"]["message"]
        assert crl(api).get_revoked_certificate_by_serial_number(cert.serial_number) is not None, "revoked all the same"


def test_a_device_the_cloud_issued_nothing_to_cannot_be_revoked_by_the_api(api: Api) -> None:
    from sqlalchemy.orm import Session

    from cloud_api.tenancy.models import Device

    cid, admin = api.company("By hand Co")
    pos = store(api, admin, cid)
    with Session(api.engine) as session, session.begin():  # a terminal with a make-certs.sh certificate
        session.add(
            Device(device_id="hand-made-till", company_id=cid, point_of_sale_id=pos, created_at=datetime.now(UTC))
        )
    reply = api.call("POST", f"/companies/{cid}/devices/hand-made-till/certificates/revoke", admin, 409)
    assert error_code(reply) == "certificates_unknown" and "kassa-cloud pki revoke" in reply.json()["error"]["message"]
    events = [e["event"] for e in api.call("GET", f"/companies/{cid}/pairing/events", admin, 200).json()]
    assert "certificates_revoked" not in events, "nothing was done"


def test_the_cli_revokes_a_certificate_and_the_device_renews_nothing_more(api: Api, pki: Path, tmp_path: Path) -> None:
    from cloud_api.pki_cli import run_pki_command

    till, _cid, _admin, cert = paired(api, "cli-revoked-till")
    pem = tmp_path / "cli-revoked-till.crt"
    pem.write_text(poll(api, till).json()["credentials"]["certificate"])
    settings = api.client.app.state.settings.model_copy(update={"device_crl_file": None})  # type: ignore[attr-defined]
    assert (
        run_pki_command(
            settings,
            api.engine,
            {"action": "revoke", "certificate": str(pem), "reason": "stolen", "out": str(tmp_path / "crl.pem")},
        )
        == 0
    )
    written = x509.load_pem_x509_crl((tmp_path / "crl.pem").read_bytes())
    assert written.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
    assert error_code(renew(api, till, expect=403)) == "device_revoked"


def test_crl_files_written_out_of_order_keep_the_newest(tmp_path: Path, pki: Path) -> None:
    from cryptography.hazmat.primitives import hashes, serialization

    from cloud_api.pairing.revocation import write_crl_file
    from cloud_api.settings import CloudSettings

    key = serialization.load_pem_private_key((pki / "device-ca.key").read_bytes(), None)
    ca = x509.load_pem_x509_certificate((pki / "device-ca.crt").read_bytes())

    def numbered(number: int) -> str:
        now = datetime.now(UTC)
        built = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca.subject)
            .last_update(now)
            .next_update(now + timedelta(days=1))
            .add_extension(x509.CRLNumber(number), critical=False)
            .sign(key, hashes.SHA256())
        )  # type: ignore[arg-type]
        return built.public_bytes(serialization.Encoding.PEM).decode()

    settings = CloudSettings(device_crl_file=tmp_path / "crl" / "device-crl.pem")
    write_crl_file(settings.device_crl_file, numbered(8))
    write_crl_file(settings.device_crl_file, numbered(7))  # the slower of two revocations writes last
    assert (
        x509.load_pem_x509_crl(settings.device_crl_file.read_bytes())
        .extensions.get_extension_for_class(x509.CRLNumber)
        .value.crl_number
        == 8
    )
    write_crl_file(settings.device_crl_file, numbered(9))
    assert (
        x509.load_pem_x509_crl(settings.device_crl_file.read_bytes())
        .extensions.get_extension_for_class(x509.CRLNumber)
        .value.crl_number
        == 9
    )
