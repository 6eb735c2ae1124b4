"""Migration 0010 on a database with devices paired before it: their certificates become
`device_certificates` rows, so a terminal paired earlier can be revoked like any other."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy.orm import Session

from cloud_api import schema
from cloud_api.db import make_engine
from cloud_api.pairing.models import DeviceCertificate
from tests.cloud.api_support import BACKENDS, private_database

AT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
AWARE_DATETIME = sa.DateTime(timezone=True)
REGISTRATIONS = sa.table(
    "pairing_registrations",
    *(
        sa.column(name)
        for name in (
            "id",
            "device_id",
            "pairing_code",
            "open_device_id",
            "open_code",
            "state",
            "identity_key",
            "csr_pem",
            "certificate_pem",
            "certificate_serial",
        )
    ),
    *(sa.column(name, AWARE_DATETIME) for name in ("created_at", "expires_at", "claimed_at", "certificate_not_after")),
)


def certificate(device_id: str) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(AT)
        .not_valid_after(AT + timedelta(days=825))
        .sign(key, hashes.SHA256())
    )


def registration(id_: int, device_id: str, state: str, cert: x509.Certificate | None) -> dict[str, object]:
    pem = cert.public_bytes(serialization.Encoding.PEM).decode() if cert else None
    return {
        "id": id_,
        "device_id": device_id,
        "pairing_code": f"CODE{id_}",
        "open_device_id": None,
        "open_code": None,
        "state": state,
        "identity_key": "k" * 43,
        "csr_pem": "csr",
        "certificate_pem": pem,
        "certificate_serial": format(cert.serial_number, "x") if cert else None,
        "created_at": AT,
        "expires_at": AT + timedelta(days=1),
        "claimed_at": AT + timedelta(hours=1) if cert else None,
        "certificate_not_after": cert.not_valid_after_utc if cert else None,
    }


@pytest.mark.parametrize("backend", BACKENDS)
def test_certificates_issued_at_pairing_before_0010_are_kept(backend: str, tmp_path: Path) -> None:
    with private_database(backend, tmp_path) as url:
        engine = make_engine(url)
        try:
            with engine.connect() as conn:
                previous = ScriptDirectory.from_config(schema.alembic_config(conn)).get_revision("0010").down_revision
            schema.upgrade(engine, str(previous))
            paired = certificate("old-till")
            with engine.begin() as conn:
                conn.execute(
                    REGISTRATIONS.insert(),
                    [registration(1, "old-till", "claimed", paired), registration(2, "never-claimed", "expired", None)],
                )
            schema.upgrade(engine)
            with Session(engine) as session:
                rows = list(session.scalars(sa.select(DeviceCertificate)))
            assert [(r.serial, r.device_id, r.source, r.revoked_at) for r in rows] == [
                (format(paired.serial_number, "x"), "old-till", "pairing", None)
            ]
            row = rows[0]
            assert row.not_after.replace(tzinfo=UTC) == paired.not_valid_after_utc
            assert x509.load_pem_x509_certificate(row.certificate_pem.encode()) == paired  # type: ignore[union-attr]
        finally:
            engine.dispose()
