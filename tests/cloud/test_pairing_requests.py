"""What the unauthenticated pairing endpoints refuse: bad proofs, bad CSRs, bad codes, skewed
clocks, oversized bodies, floods, and a cloud that has no device CA to sign with."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from broker.contract.pairing import registration_request
from broker.contract.signing import public_key_text
from tests.cloud.api_support import BACKENDS, Api, error_code
from tests.cloud.pairing_support import Terminal, csr_pem, make_pki, pairing_api, register


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pki(tmp_path_factory.mktemp("pairing-pki"))


@pytest.fixture(scope="module", params=BACKENDS)
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, pki: Path) -> Iterator[Api]:
    with pairing_api(request.param, tmp_path_factory.mktemp("pairing"), pki) as value:
        yield value


def post(api: Api, body: Any, path: str = "/pairing/registrations") -> Any:
    return api.client.post(
        path,
        content=body if isinstance(body, (bytes, str)) else json.dumps(body),
        headers={"Content-Type": "application/json"},
    )


def bad_signature_csr(device_id: str) -> str:
    """A well-formed CSR for `device_id` carrying the signature of another request by the same key."""
    key = ec.generate_private_key(ec.SECP256R1())
    good = x509.load_pem_x509_csr(csr_pem(device_id, key).encode())
    while True:  # ECDSA signatures vary in length by a byte or two: take one that fits in place
        other = x509.load_pem_x509_csr(csr_pem(device_id[::-1], key).encode())
        if len(other.signature) == len(good.signature):
            break
    der = bytearray(good.public_bytes(serialization.Encoding.DER))
    der[-len(good.signature) :] = other.signature
    return x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM).decode()


def test_proofs_must_come_from_the_identity_key(api: Api) -> None:
    till = Terminal("req-till-1")
    body = till.registration()
    body["identity_key"] = public_key_text(Ed25519PrivateKey.generate().public_key())  # claim another key
    assert error_code(post(api, body)) == "bad_signature"
    body = till.registration()
    body["proof"] = Terminal("req-till-1").registration()["proof"]  # someone else's proof
    assert error_code(post(api, body)) == "bad_signature"
    body = till.registration()
    body["csr"] = csr_pem("req-till-1")  # a CSR the proof does not cover
    assert error_code(post(api, body)) == "invalid_request"
    body = till.registration()
    body["device_id"] = "req-till-other"
    assert post(api, body).status_code in (401, 422)
    register(api, till)  # control: the untouched request is accepted


@pytest.mark.parametrize("skew", [timedelta(minutes=-20), timedelta(minutes=20)])
def test_a_proof_far_from_the_clouds_time_is_refused(api: Api, skew: timedelta) -> None:
    till = Terminal(f"req-skew-{int(skew.total_seconds())}")
    reply = register(api, till, expect=422, now=datetime.now(UTC) + skew)
    assert error_code(reply) == "clock_skew" and "Date header" in reply.json()["error"]["message"]
    register(api, till, now=datetime.now(UTC) + timedelta(minutes=10))  # within the margin


def test_csrs_are_checked(api: Api) -> None:
    cases = {
        "another common name": csr_pem("someone-else"),
        "an RSA key": csr_pem("req-till-2", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        "a P-384 key": csr_pem("req-till-2", ec.generate_private_key(ec.SECP384R1())),
        "a bad signature": bad_signature_csr("req-till-2"),
        "two common names": csr_pem("req-till-2", extra_names=(x509.NameAttribute(NameOID.COMMON_NAME, "req-till-2"),)),
    }
    for what, csr in cases.items():
        reply = register(api, Terminal("req-till-2"), expect=None, csr=csr)
        assert reply.status_code == 422 and error_code(reply) == "invalid_csr", (what, reply.text)
    not_pem = Terminal("req-till-2").registration()
    not_pem["csr"] = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
    assert error_code(post(api, not_pem)) in ("invalid_request", "invalid_csr")


def test_malformed_requests_are_invalid(api: Api) -> None:
    good = Terminal("req-till-3").registration()
    variants: list[Any] = [
        b"not json",
        b"[]",
        b"{}",
        {**good, "extra": 1},
        {**good, "device_id": "kassa-cloud"},
        {**good, "device_id": "a/b"},
        {**good, "pairing_code": good["pairing_code"][:-1]},
        {**good, "identity_key": "short"},
        {**good, "proof": "x"},
        {**good, "csr": 5},
    ]
    for body in variants:
        reply = post(api, body)
        assert reply.status_code == 422 and error_code(reply) == "invalid_request", (body, reply.text)
    assert error_code(post(api, {"device_id": "req-till-3"}, "/pairing/poll")) == "invalid_request"


def test_oversized_bodies_are_refused_before_parsing(api: Api) -> None:
    huge = b'{"device_id": "' + b"x" * 20_000 + b'"}'
    reply = post(api, huge)
    assert reply.status_code == 413 and error_code(reply) == "too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while read
        for _ in range(40):
            yield b" " * 1024

    reply = api.client.post("/pairing/poll", content=chunks(), headers={"Content-Type": "application/json"})
    assert reply.status_code == 413 and error_code(reply) == "too_large"


def test_polls_before_registering_and_with_forged_proofs(api: Api) -> None:
    assert error_code(api.client.post("/pairing/poll", json=Terminal("req-never").poll())) == "not_registered"
    till = Terminal("req-till-4")
    register(api, till)
    old = till.poll(now=datetime.now(UTC) - timedelta(hours=1))
    assert error_code(api.client.post("/pairing/poll", json=old)) == "clock_skew", "an old poll cannot be replayed"
    registration_proof = till.registration()["proof"]
    reply = api.client.post("/pairing/poll", json={"device_id": "req-till-4", "proof": registration_proof})
    assert error_code(reply) == "bad_signature", "a registration proof is not a poll proof"


def test_floods_from_one_address_are_limited(tmp_path: Path, pki: Path) -> None:
    with pairing_api("sqlite", tmp_path, pki, pairing_requests_per_minute=3, pairing_max_pending=2) as api:
        for n in range(2):
            register(api, Terminal(f"flood-{n}"))
        reply = register(api, Terminal("flood-2"), expect=429)
        assert error_code(reply) == "rate_limited" and "waiting" in reply.json()["error"]["message"], "the pending cap"
        reply = api.client.post("/pairing/poll", json=Terminal("flood-0").poll())
        assert (
            reply.status_code == 429 and error_code(reply) == "rate_limited" and int(reply.headers["Retry-After"]) >= 1
        )
        cid, admin = api.company("Flooded")
        api.call("GET", f"/companies/{cid}/pairing/events", admin, 200)  # admin endpoints are not limited by it


def test_without_a_device_ca_pairing_is_unavailable(tmp_path: Path) -> None:
    with pairing_api("sqlite", tmp_path, None) as api:
        reply = register(api, Terminal("no-ca-till"), expect=503)
        assert (
            error_code(reply) == "pairing_unavailable"
            and "KASSA_CLOUD_DEVICE_CA_CERT_FILE" in reply.json()["error"]["message"]
        )


def test_a_device_ca_key_readable_by_others_is_refused(tmp_path: Path, pki: Path) -> None:
    loose = tmp_path / "device-ca.key"
    loose.write_bytes((pki / "device-ca.key").read_bytes())
    loose.chmod(0o644)
    with pairing_api("sqlite", tmp_path, pki, device_ca_key_file=loose) as api:
        reply = register(api, Terminal("loose-key-till"), expect=503)
        assert "chmod 600" in reply.json()["error"]["message"]


def test_registration_and_poll_are_in_the_openapi_spec(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    schema = spec["paths"]["/pairing/registrations"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"device_id", "identity_key", "csr", "pairing_code", "proof"} <= set(schema["properties"])
    assert "security" not in spec["paths"]["/pairing/poll"]["post"]


def test_registration_built_by_the_contract_helper_round_trips(api: Api) -> None:
    identity = Ed25519PrivateKey.generate()
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "req-till-5")]))
        .sign(key, hashes.SHA256())
    )
    pem = csr.public_bytes(serialization.Encoding.PEM).decode()
    request = registration_request("req-till-5", identity, pem, Terminal("x").code, datetime.now(UTC))
    assert post(api, request.model_dump(mode="json")).status_code == 201
