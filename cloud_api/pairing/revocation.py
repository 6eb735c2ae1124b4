"""Device certificates the cloud knows of, their revocation, and the device CA's CRL.

Revoking a device (retired or stolen) is one call: every certificate of it is marked revoked,
a new CRL is signed with the device CA key and stored, and written to `device_crl_file` when
the broker runs on this host. The broker host otherwise fetches it from `GET
/pki/device-crl.pem` (broker/production/fetch-crl.sh, run by kassa-broker-crl.timer) and
reloads Mosquitto, whose device listener then refuses those certificates at the TLS handshake;
kassa's broker plugin shuts out a revoked device that is still connected at that moment.

The CRL's nextUpdate is the device CA's own expiry: OpenSSL refuses every certificate of an
issuer whose CRL is past its nextUpdate, so a short one would lock the whole fleet out the
day the cloud failed to re-sign. The broker is the only reader and re-reads on every change.
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed448, ed25519
from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from cloud_api.db import utc
from cloud_api.pairing.certificates import DeviceCa, certificate_pem, load_device_ca
from cloud_api.pairing.models import CertificateSource, DeviceCertificate, DeviceCrl
from cloud_api.settings import CloudSettings
from cloud_api.tenancy.models import Device

log = logging.getLogger(__name__)
CRL_ROW = 1


def serial_text(serial: int) -> str:
    return format(serial, "x")


def record_certificate(
    session: Session, device_id: str, certificate: x509.Certificate, source: str, now: datetime
) -> DeviceCertificate:
    row = DeviceCertificate(
        serial=serial_text(certificate.serial_number),
        device_id=device_id,
        source=source,
        certificate_pem=certificate_pem(certificate) if source != CertificateSource.IMPORTED else None,
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        issued_at=now,
    )
    session.add(row)
    return row


def device_certificates(session: Session, device_id: str) -> list[DeviceCertificate]:
    return list(
        session.scalars(
            select(DeviceCertificate)
            .where(DeviceCertificate.device_id == device_id)
            .order_by(DeviceCertificate.issued_at.desc(), DeviceCertificate.serial)
        )
    )


def has_certificates(session: Session, device_id: str) -> bool:
    """Whether the cloud issued (or was told of) any certificate of the device."""
    return bool(session.scalar(select(exists().where(DeviceCertificate.device_id == device_id))))


def revoke_device(session: Session, device: Device, *, by_user: int | None, reason: str, now: datetime) -> list[str]:
    """Mark every certificate of `device` revoked and the device as shut out of the broker;
    returns the serials revoked now. The caller signs the new CRL (`issue_crl`) in the same
    transaction and commits."""
    serials = list(
        session.scalars(
            select(DeviceCertificate.serial).where(
                DeviceCertificate.device_id == device.device_id, DeviceCertificate.revoked_at.is_(None)
            )
        )
    )
    if serials:
        session.execute(
            update(DeviceCertificate)
            .where(DeviceCertificate.serial.in_(serials))
            .values(revoked_at=now, revoked_by=by_user, revocation_reason=reason[:200])
            .execution_options(synchronize_session=False)
        )
    shut_out(device, now)
    return serials


def shut_out(device: Device, now: datetime) -> None:
    """From now on the device renews nothing: it was revoked."""
    if device.broker_access_revoked_at is None:
        device.broker_access_revoked_at = now


def import_revoked(session: Session, certificate: x509.Certificate, device_id: str, reason: str, now: datetime) -> bool:
    """Revoke a certificate the cloud did not issue (make-certs.sh); False if already revoked.
    The device, when the cloud knows it, renews nothing more."""
    device = session.get(Device, device_id)
    if device is not None:
        shut_out(device, now)
    serial = serial_text(certificate.serial_number)
    row = session.get(DeviceCertificate, serial)
    if row is None:
        row = record_certificate(session, device_id, certificate, CertificateSource.IMPORTED, now)
    if row.revoked_at is not None:
        return False
    row.revoked_at, row.revocation_reason = now, reason[:200]
    return True


def issue_crl(session: Session, ca: DeviceCa, now: datetime) -> DeviceCrl:
    """Sign a new CRL of every revoked certificate that has not expired yet, and store it."""
    state = session.get(DeviceCrl, CRL_ROW, with_for_update=True)
    this_update = now.replace(microsecond=0)
    if state is not None and this_update <= utc(state.this_update):
        this_update = utc(state.this_update) + timedelta(seconds=1)
    number = (state.number if state is not None else 0) + 1
    revoked = session.scalars(
        select(DeviceCertificate)
        .where(DeviceCertificate.revoked_at.is_not(None), DeviceCertificate.not_after > now)
        .order_by(DeviceCertificate.serial)
    )
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(this_update)
        .next_update(max(ca.certificate.not_valid_after_utc, this_update + timedelta(days=1)))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.private_key.public_key()),
            critical=False,
        )
    )
    for row in revoked:
        assert row.revoked_at is not None  # the query selects revoked rows only
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(int(row.serial, 16))
            .revocation_date(utc(row.revoked_at).replace(microsecond=0))
            .build()
        )
    algorithm = (
        None if isinstance(ca.private_key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)) else hashes.SHA256()
    )
    crl_pem = builder.sign(ca.private_key, algorithm).public_bytes(serialization.Encoding.PEM).decode()
    if state is None:
        state = DeviceCrl(id=CRL_ROW, number=number, this_update=this_update, crl_pem=crl_pem)
        session.add(state)
    else:
        state.number, state.this_update, state.crl_pem = number, this_update, crl_pem
    return state


def current_crl(session: Session, settings: CloudSettings, now: datetime) -> DeviceCrl:
    """The stored CRL, signing the first one if there is none yet (commits then)."""
    state = session.get(DeviceCrl, CRL_ROW)
    if state is None:
        state = issue_crl(session, load_device_ca(settings), now)
        session.commit()
    return state


def write_crl_file(target: Path | None, crl_pem: str) -> Path | None:
    """Write the CRL to `target` (`device_crl_file`), where a broker reads it (atomic; 0644: a CRL
    is public). None: nothing to write.

    Two revocations at once each write after their commit, in any order: under a lock, a CRL
    replaces the file only if its number is higher than the one there, so the newest stays."""
    if target is None:
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if crl_number(crl_pem) <= _number_in(target):
            return target  # a newer one is already there
        fd, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "w") as out:
                out.write(crl_pem)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(partial, 0o644)
            os.replace(partial, target)
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise
    return target


def crl_number(crl_pem: str | bytes) -> int:
    crl = x509.load_pem_x509_crl(crl_pem.encode() if isinstance(crl_pem, str) else crl_pem)
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def _number_in(path: Path) -> int:
    """The number of the CRL in `path`; -1 when there is none or it cannot be read."""
    try:
        return crl_number(path.read_bytes())
    except (OSError, ValueError, x509.ExtensionNotFound):
        return -1
