"""Pairing tables: registrations waiting for (or past) their claim, and the audit trail.

A registration is *open* while pending: `open_device_id` and `open_code` then equal
`device_id` and `pairing_code`, and their unique constraints allow one open registration per
device id and per code even when requests race (on SQLite and PostgreSQL alike, like
`partner_links.open_company_id`). Claimed and expired rows keep their history with both NULL.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cloud_api.db import DEVICE_ID, Base

CODE = String(16)


class RegistrationStatus:
    PENDING = "pending"  # waiting for a company admin to claim the code
    CLAIMED = "claimed"  # claimed: certificate issued, device row made
    EXPIRED = "expired"  # not claimed in time; the device has to register again


class AuditEvent:
    """What `pairing_events.event` holds."""

    REGISTERED = "registered"
    REREGISTERED = "reregistered"  # the same device changed its code or CSR before the claim
    CLAIMED = "claimed"
    CLAIM_FAILED = "claim_failed"
    CERTIFICATE_DELIVERED = "certificate_delivered"
    CERTIFICATE_RENEWED = "certificate_renewed"  # a paired device got a new certificate
    CERTIFICATES_REVOKED = "certificates_revoked"  # a device was shut out of the broker


class PairingRegistration(Base):
    __tablename__ = "pairing_registrations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(DEVICE_ID, index=True)
    pairing_code: Mapped[str] = mapped_column(CODE, index=True)
    open_device_id: Mapped[str | None] = mapped_column(DEVICE_ID, unique=True)
    open_code: Mapped[str | None] = mapped_column(CODE, unique=True)
    state: Mapped[str] = mapped_column(String(16))
    identity_key: Mapped[str] = mapped_column(String(64))  # Ed25519 public key, base64url
    csr_pem: Mapped[str] = mapped_column(Text)
    registered_from: Mapped[str | None] = mapped_column(String(64))  # client address, for the audit
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    last_poll_at: Mapped[datetime | None]
    claimed_at: Mapped[datetime | None]
    claimed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id"), index=True)
    point_of_sale_id: Mapped[int | None] = mapped_column(ForeignKey("points_of_sale.id"))
    certificate_pem: Mapped[str | None] = mapped_column(Text)
    certificate_serial: Mapped[str | None] = mapped_column(String(40))  # hex
    certificate_not_after: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]  # the device first fetched its certificate


class PairingAudit(Base):
    """Who registered, claimed and fetched what, when; failed claims feed the guessing limit."""

    __tablename__ = "pairing_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    event: Mapped[str] = mapped_column(String(32))
    device_id: Mapped[str | None] = mapped_column(DEVICE_ID, index=True)
    registration_id: Mapped[int | None] = mapped_column(ForeignKey("pairing_registrations.id"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id"))
    point_of_sale_id: Mapped[int | None] = mapped_column(ForeignKey("points_of_sale.id"))
    client: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (Index("ix_pairing_events_company_event_at", "company_id", "event", "at"),)


class CertificateSource:
    """What `device_certificates.source` holds."""

    PAIRING = "pairing"  # signed when a company admin claimed the device
    RENEWAL = "renewal"  # signed for the paired device before its certificate ran out
    IMPORTED = "imported"  # made elsewhere (make-certs.sh) and named here to be revoked


class DeviceCertificate(Base):
    """Every broker certificate of the device CA the cloud knows of, and its revocation.

    The CRL (`DeviceCrl`) lists the revoked ones that have not yet expired. Rows are never
    deleted: the serial history of a device stays readable.
    """

    __tablename__ = "device_certificates"

    serial: Mapped[str] = mapped_column(String(40), primary_key=True)  # hex, lower case, no leading zeros
    device_id: Mapped[str] = mapped_column(DEVICE_ID, index=True)
    source: Mapped[str] = mapped_column(String(16))
    certificate_pem: Mapped[str | None] = mapped_column(Text)
    not_before: Mapped[datetime]
    not_after: Mapped[datetime]
    issued_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    revocation_reason: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (Index("ix_device_certificates_revoked_not_after", "revoked_at", "not_after"),)


class DeviceCrl(Base):
    """The device CA's newest certificate revocation list (one row, id 1): what the broker's
    device listener reads. Its number only grows; `this_update` strictly increases, because
    OpenSSL prefers the newest of two CRLs of one issuer by that time (second resolution)."""

    __tablename__ = "device_crl"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[int] = mapped_column(Integer)
    this_update: Mapped[datetime]
    crl_pem: Mapped[str] = mapped_column(Text)
