"""Device certificates, their revocation and the device CA's CRL.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07

New tables `device_certificates` (every broker certificate of the device CA the cloud issued
or was told of, with its revocation) and `device_crl` (the newest signed CRL, one row), and
`devices.broker_access_revoked_at`. Certificates issued at pairing before this revision are
copied from `pairing_registrations` (serial, not_after, PEM), so they can be revoked too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from cryptography import x509

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = sa.DateTime(timezone=True)
DEVICE_ID = sa.String(64)


def _col(name: str, type_: sa.types.TypeEngine[Any], nullable: bool = False, **kw: Any) -> sa.Column[Any]:
    return sa.Column(name, type_, nullable=nullable, **kw)


def upgrade() -> None:
    op.create_table(
        "device_certificates",
        _col("serial", sa.String(40)), _col("device_id", DEVICE_ID), _col("source", sa.String(16)),
        _col("certificate_pem", sa.Text(), True), _col("not_before", UTC), _col("not_after", UTC), _col("issued_at", UTC),
        _col("revoked_at", UTC, True), _col("revoked_by", sa.Integer(), True), _col("revocation_reason", sa.String(200), True),
        sa.ForeignKeyConstraint(["revoked_by"], ["users.id"]),
        sa.PrimaryKeyConstraint("serial"),
    )
    op.create_index("ix_device_certificates_device_id", "device_certificates", ["device_id"])
    op.create_index("ix_device_certificates_revoked_not_after", "device_certificates", ["revoked_at", "not_after"])
    op.create_table(
        "device_crl",
        _col("id", sa.Integer(), autoincrement=False), _col("number", sa.Integer()), _col("this_update", UTC),
        _col("crl_pem", sa.Text()),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("devices") as batch:
        batch.add_column(_col("broker_access_revoked_at", UTC, True))
    _copy_paired_certificates()


def _copy_paired_certificates() -> None:
    registrations = sa.table("pairing_registrations", sa.column("device_id"), sa.column("certificate_pem"),
                             sa.column("certificate_serial"), sa.column("claimed_at", UTC), sa.column("state"))
    certificates = sa.table("device_certificates", sa.column("serial"), sa.column("device_id"), sa.column("source"),
                            sa.column("certificate_pem"), sa.column("not_before", UTC), sa.column("not_after", UTC),
                            sa.column("issued_at", UTC))
    connection = op.get_bind()
    rows = connection.execute(sa.select(registrations.c.device_id, registrations.c.certificate_pem, registrations.c.claimed_at)
                              .where(registrations.c.state == "claimed", registrations.c.certificate_pem.is_not(None)))
    copied = []
    for device_id, pem, claimed_at in rows:
        certificate = x509.load_pem_x509_certificate(pem.encode())
        copied.append({"serial": format(certificate.serial_number, "x"), "device_id": device_id, "source": "pairing",
                       "certificate_pem": pem, "not_before": certificate.not_valid_before_utc,
                       "not_after": certificate.not_valid_after_utc, "issued_at": claimed_at})
    if copied:
        connection.execute(certificates.insert(), copied)


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("broker_access_revoked_at")
    op.drop_table("device_crl")
    op.drop_table("device_certificates")
