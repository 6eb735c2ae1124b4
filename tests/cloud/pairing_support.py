"""Shared by tests/cloud/test_pairing_*.py: a device CA made by make-certs.sh, an API whose
settings point at it, and terminals with real keys that build signed pairing requests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from broker.contract.pairing import new_pairing_code, poll_request, registration_request
from cloud_api.app import create_app
from cloud_api.settings import CloudSettings
from cloud_api.tenancy.tokens import create_owner
from tests.cloud.api_support import Api, migrated_engine
from tests.deploy.tls_broker import make_certs


def make_pki(out: Path) -> Path:
    result = make_certs(out)
    assert result.returncode == 0, result.stderr
    return out


def pairing_settings(database_url: str, pki: Path | None, **overrides: Any) -> CloudSettings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "pairing_broker_host": "mqtt.example.com",
        "pairing_requests_per_minute": 100_000,
    }
    if pki is not None:
        values |= {
            "device_ca_cert_file": pki / "device-ca.crt",
            "device_ca_key_file": pki / "device-ca.key",
            "pairing_broker_ca_file": pki / "cloud-ca.crt",
        }
    return CloudSettings(**(values | overrides))


@contextlib.contextmanager
def pairing_api(backend: str, directory: Path, pki: Path | None, **overrides: Any) -> Iterator[Api]:
    with migrated_engine(backend, directory) as engine:
        with Session(engine, expire_on_commit=False) as session:
            _owner, _admin, token = create_owner(session, "Owner")
        app = create_app(pairing_settings(str(engine.url), pki, **overrides), engine)
        with TestClient(app, raise_server_exceptions=False) as client:
            yield Api(client, engine, token)


def csr_pem(common_name: str, key: Any = None, extra_names: tuple[x509.NameAttribute, ...] = ()) -> str:
    key = key or ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([*extra_names, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


@dataclass
class Terminal:
    """A would-be device: its identity key, its TLS key and the code it shows."""

    device_id: str
    identity: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    tls_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    code: str = field(default_factory=new_pairing_code)

    def csr(self) -> str:
        return csr_pem(self.device_id, self.tls_key)

    def registration(self, *, csr: str | None = None, now: datetime | None = None) -> dict[str, Any]:
        request = registration_request(
            self.device_id, self.identity, csr or self.csr(), self.code, now or datetime.now(UTC)
        )
        return request.model_dump(mode="json")

    def poll(self, now: datetime | None = None) -> dict[str, Any]:
        return poll_request(self.device_id, self.identity, now or datetime.now(UTC)).model_dump(mode="json")


def register(api: Api, terminal: Terminal, expect: int | None = 201, **kw: Any) -> Any:
    reply = api.client.post("/pairing/registrations", json=terminal.registration(**kw))
    if expect is not None:
        assert reply.status_code == expect, reply.text
    return reply


def poll(api: Api, terminal: Terminal, expect: int | None = 200) -> Any:
    reply = api.client.post("/pairing/poll", json=terminal.poll())
    if expect is not None:
        assert reply.status_code == expect, reply.text
    return reply


def claim(api: Api, token: str, company_id: int, code: str, pos_id: int, expect: int | None = 201) -> Any:
    return api.call(
        "POST",
        f"/companies/{company_id}/pairing/claims",
        token,
        expect,
        json={"pairing_code": code, "point_of_sale_id": pos_id},
    )


def store(api: Api, token: str, company_id: int, code: str = "MAIN") -> int:
    return api.call(
        "POST", f"/companies/{company_id}/points-of-sale", token, 201, json={"name": code, "code": code}
    ).json()["id"]
