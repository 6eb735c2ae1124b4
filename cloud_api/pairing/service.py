"""Pairing rules: register, poll, claim. The HTTP layer is cloud_api/api/pairing.py.

Hijacking is what these rules are about:
- A registration proves possession of the identity key (signed proof) and of the TLS key
  (the CSR's own signature). Polls are signed by the identity key the registration named, so
  nobody else can fetch, replace or refresh a registration.
- A device id that is paired (a `devices` row with a key) cannot be registered again with
  another key; one pending registration per device id, and only its own key may change it.
  A stranger who registers a device id first blocks the real terminal until the registration
  expires, but can never get it claimed: the admin types the code the real terminal shows.
- Codes carry 40 random bits and failed claims are limited per company, so guessing another
  company's code is hopeless; claiming needs a company admin of the company whose point of
  sale it goes into.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from broker.contract.pairing import (
    BrokerCredentials,
    PairingProofError,
    PollReply,
    PollRequest,
    Registration,
    RegistrationRequest,
    RegistrationState,
    RenewalRequest,
    format_pairing_code,
    verify_poll,
    verify_registration,
    verify_renewal,
)
from cloud_api.api.errors import ApiError, conflict
from cloud_api.cashiers.roster import publish_rosters
from cloud_api.db import rows_matched, utc
from cloud_api.pairing.certificates import (
    CaUnavailable,
    CsrError,
    DeviceCa,
    certificate_pem,
    check_csr,
    issue_certificate,
    load_device_ca,
)
from cloud_api.pairing.models import (
    AuditEvent,
    CertificateSource,
    DeviceCertificate,
    PairingAudit,
    PairingRegistration,
    RegistrationStatus,
)
from cloud_api.pairing.revocation import record_certificate
from cloud_api.settings import CloudSettings
from cloud_api.tenancy.models import Company, Device, PointOfSale
from cloud_api.tenancy.tokens import Principal

# Failed claims a company may make in CLAIM_FAILURE_WINDOW before it has to wait.
CLAIM_FAILURES_ALLOWED = 10
CLAIM_FAILURE_WINDOW = timedelta(minutes=15)
# A poll records last_poll_at at most this often, so waiting devices do not each cost a write.
POLL_RECORD_RESOLUTION = timedelta(minutes=1)


def unavailable(message: str) -> ApiError:
    return ApiError(503, "pairing_unavailable", message)


def _proof_error(exc: PairingProofError) -> ApiError:
    if exc.reason == "bad_signature":
        return ApiError(401, "bad_signature", str(exc))
    if exc.reason == "clock_skew":
        return ApiError(422, "clock_skew", str(exc))
    return ApiError(422, "invalid_request", str(exc))


def _audit(session: Session, event: str, now: datetime, **fields: object) -> None:
    session.add(PairingAudit(at=now, event=event, **fields))


def expire_stale(session: Session, now: datetime) -> None:
    """Close pending registrations whose time is up, freeing their device id and code."""
    session.execute(
        update(PairingRegistration)
        .where(PairingRegistration.state == RegistrationStatus.PENDING, PairingRegistration.expires_at <= now)
        .values(state=RegistrationStatus.EXPIRED, open_device_id=None, open_code=None)
        .execution_options(synchronize_session=False)
    )


# ------------------------------------------------------------------ register
def register(
    session: Session, settings: CloudSettings, request: RegistrationRequest, client: str, now: datetime
) -> tuple[PairingRegistration, bool]:
    """Record (or find again) the device's registration; returns it and whether it is new."""
    try:
        verify_registration(request, now)
    except PairingProofError as exc:
        raise _proof_error(exc) from None
    try:
        check_csr(request.csr, request.device_id)
    except CsrError as exc:
        raise ApiError(422, "invalid_csr", str(exc)) from None
    _device_ca(settings)  # fail now rather than leave the device waiting for a claim that cannot work
    expire_stale(session, now)
    device = session.get(Device, request.device_id)
    if device is not None and device.public_key is not None:
        claimed = _claimed_registration(session, request.device_id, device.public_key)
        if device.public_key == request.identity_key and claimed is not None:
            return claimed, False  # the paired device itself, e.g. after losing the reply
        raise conflict(
            "device_paired",
            f"device {request.device_id} is already paired; a company admin must release it "
            "before it can be paired again",
        )
    pending = session.scalar(select(PairingRegistration).where(PairingRegistration.open_device_id == request.device_id))
    if pending is not None:
        if pending.identity_key != request.identity_key:
            raise conflict(
                "device_id_taken",
                f"device id {request.device_id} is waiting for a claim under another key; "
                f"that registration expires at {utc(pending.expires_at).isoformat()}",
            )
        return _update_pending(session, pending, request, now), False
    waiting = session.execute(
        select(func.count())
        .select_from(PairingRegistration)
        .where(PairingRegistration.state == RegistrationStatus.PENDING)
    ).scalar_one()
    if waiting >= settings.pairing_max_pending:
        raise ApiError(
            429, "rate_limited", "too many devices are waiting for a claim; try again later", {"Retry-After": "300"}
        )
    _check_code_free(session, request.pairing_code)
    registration = PairingRegistration(
        device_id=request.device_id,
        pairing_code=request.pairing_code,
        open_device_id=request.device_id,
        open_code=request.pairing_code,
        state=RegistrationStatus.PENDING,
        identity_key=request.identity_key,
        csr_pem=request.csr,
        registered_from=client[:64],
        created_at=now,
        expires_at=now + timedelta(seconds=settings.pairing_code_ttl_s),
    )
    session.add(registration)
    session.flush()
    _audit(
        session,
        AuditEvent.REGISTERED,
        now,
        device_id=request.device_id,
        registration_id=registration.id,
        client=client[:64],
    )
    session.commit()
    return registration, True


def _claimed_registration(session: Session, device_id: str, identity_key: str) -> PairingRegistration | None:
    return session.scalar(
        select(PairingRegistration)
        .where(
            PairingRegistration.device_id == device_id,
            PairingRegistration.identity_key == identity_key,
            PairingRegistration.state == RegistrationStatus.CLAIMED,
        )
        .order_by(PairingRegistration.id.desc())
        .limit(1)
    )


def _check_code_free(session: Session, code: str) -> None:
    if session.scalar(select(PairingRegistration.id).where(PairingRegistration.open_code == code)) is not None:
        raise conflict(
            "pairing_code_taken", "another device waits with this pairing code; make a new code and register again"
        )


def _update_pending(
    session: Session, pending: PairingRegistration, request: RegistrationRequest, now: datetime
) -> PairingRegistration:
    """The same device (same key) registering again: a restart, a new code or a new CSR."""
    changed = []
    if pending.pairing_code != request.pairing_code:
        _check_code_free(session, request.pairing_code)
        pending.pairing_code = pending.open_code = request.pairing_code
        changed.append("code")
    if pending.csr_pem != request.csr:
        pending.csr_pem = request.csr
        changed.append("csr")
    if changed:
        _audit(
            session,
            AuditEvent.REREGISTERED,
            now,
            device_id=pending.device_id,
            registration_id=pending.id,
            detail=f"changed: {', '.join(changed)}",
        )
        session.commit()
    return pending


def registration_reply(registration: PairingRegistration, settings: CloudSettings) -> Registration:
    pending = registration.state == RegistrationStatus.PENDING
    return Registration(
        device_id=registration.device_id,
        state=RegistrationState(registration.state),
        pairing_code=registration.pairing_code,
        expires_at=utc(registration.expires_at) if pending else None,
        poll_interval_s=settings.pairing_poll_interval_s,
    )


# ---------------------------------------------------------------------- poll
def poll(session: Session, settings: CloudSettings, request: PollRequest, now: datetime) -> PollReply:
    """The state of the device's registration, with its certificate once claimed."""
    registration = session.scalar(
        select(PairingRegistration)
        .where(PairingRegistration.device_id == request.device_id)
        .order_by(PairingRegistration.id.desc())
        .limit(1)
    )
    if registration is None:
        raise ApiError(404, "not_registered", f"device {request.device_id} has no registration; register first")
    try:
        verify_poll(request, registration.identity_key, now)
    except PairingProofError as exc:
        raise _proof_error(exc) from None
    if registration.state == RegistrationStatus.PENDING and utc(registration.expires_at) <= now:
        expire_stale(session, now)
        session.commit()
        registration.state = RegistrationStatus.EXPIRED
    if registration.state == RegistrationStatus.EXPIRED:
        raise ApiError(
            410, "registration_expired", f"the registration of {request.device_id} expired unclaimed; register again"
        )
    credentials = None
    if registration.state == RegistrationStatus.CLAIMED:
        credentials = _credentials(session, settings, registration)
        if registration.delivered_at is None:
            registration.delivered_at = now
            _audit(
                session,
                AuditEvent.CERTIFICATE_DELIVERED,
                now,
                device_id=registration.device_id,
                registration_id=registration.id,
                company_id=registration.company_id,
            )
    if registration.last_poll_at is None or now - utc(registration.last_poll_at) >= POLL_RECORD_RESOLUTION:
        registration.last_poll_at = now
    session.commit()
    reply = registration_reply(registration, settings)
    return PollReply(**reply.model_dump(), credentials=credentials)


def _credentials(session: Session, settings: CloudSettings, registration: PairingRegistration) -> BrokerCredentials:
    return _broker_credentials(
        session, settings, _device_ca(settings), registration.certificate_pem or "", registration.point_of_sale_id
    )


def _device_ca(settings: CloudSettings) -> DeviceCa:
    try:
        return load_device_ca(settings)
    except CaUnavailable as exc:
        raise unavailable(str(exc)) from None


def _broker_credentials(
    session: Session, settings: CloudSettings, ca: DeviceCa, certificate: str, point_of_sale_id: int | None
) -> BrokerCredentials:
    pos = session.get(PointOfSale, point_of_sale_id) if point_of_sale_id is not None else None
    return BrokerCredentials(
        certificate=certificate,
        ca_certificate=ca.certificate_pem,
        broker_ca_certificates=ca.broker_ca_pem,
        broker_host=settings.pairing_broker_host or settings.mqtt_host,
        broker_port=settings.pairing_broker_port,
        point_of_sale=pos.code if pos is not None else None,
    )


# -------------------------------------------------------------------- renew
def renew(session: Session, settings: CloudSettings, request: RenewalRequest, now: datetime) -> BrokerCredentials:
    """A new broker certificate for a paired device that proves it holds its identity key."""
    device = session.get(Device, request.device_id)
    if device is None or device.public_key is None:
        raise ApiError(404, "not_paired", f"device {request.device_id} is not paired; pair it first")
    try:
        verify_renewal(request, device.public_key, now)
    except PairingProofError as exc:
        raise _proof_error(exc) from None
    if device.broker_access_revoked_at is not None:
        raise ApiError(
            403,
            "device_revoked",
            f"the broker certificates of {request.device_id} were revoked "
            f"{utc(device.broker_access_revoked_at).date().isoformat()}; a revoked terminal gets no new one",
        )
    try:
        csr = check_csr(request.csr, request.device_id)
    except CsrError as exc:
        raise ApiError(422, "invalid_csr", str(exc)) from None
    newest = session.scalar(
        select(func.max(DeviceCertificate.issued_at)).where(DeviceCertificate.device_id == device.device_id)
    )
    wait = (
        timedelta(seconds=settings.device_cert_renew_interval_s) - (now - utc(newest))
        if newest is not None
        else timedelta(0)
    )
    if wait > timedelta(0):
        seconds = int(wait.total_seconds()) + 1
        raise ApiError(
            429,
            "rate_limited",
            f"{request.device_id} got a certificate moments ago; try again in {seconds} s",
            {"Retry-After": str(seconds)},
        )
    ca = _device_ca(settings)
    try:
        certificate = issue_certificate(ca, csr, device.device_id, settings.device_cert_days, now)
    except CaUnavailable as exc:
        raise unavailable(str(exc)) from None
    row = record_certificate(session, device.device_id, certificate, CertificateSource.RENEWAL, now)
    _audit(
        session,
        AuditEvent.CERTIFICATE_RENEWED,
        now,
        device_id=device.device_id,
        company_id=device.company_id,
        detail=(
            f"certificate serial {certificate.serial_number:x}, valid until "
            f"{certificate.not_valid_after_utc.isoformat()}"
        ),
    )
    session.commit()
    return _broker_credentials(session, settings, ca, row.certificate_pem or "", device.point_of_sale_id)


# --------------------------------------------------------------------- claim
def claim(
    session: Session,
    settings: CloudSettings,
    p: Principal,
    company: Company,
    pos: PointOfSale,
    code: str,
    now: datetime,
) -> PairingRegistration:
    """Claim the device waiting with `code` into `pos`: sign its certificate, make its device row."""
    failures = session.execute(
        select(func.count())
        .select_from(PairingAudit)
        .where(
            PairingAudit.company_id == company.id,
            PairingAudit.event == AuditEvent.CLAIM_FAILED,
            PairingAudit.at > now - CLAIM_FAILURE_WINDOW,
        )
    ).scalar_one()
    if failures >= CLAIM_FAILURES_ALLOWED:
        raise ApiError(
            429,
            "too_many_attempts",
            f"{failures} failed claims in the last {CLAIM_FAILURE_WINDOW.seconds // 60} "
            "minutes; check the code on the terminal and try again later",
            {"Retry-After": str(CLAIM_FAILURE_WINDOW.seconds)},
        )
    shown = format_pairing_code(code)
    registration = session.scalar(
        select(PairingRegistration)
        .where(PairingRegistration.pairing_code == code)
        .order_by(PairingRegistration.id.desc())
        .limit(1)
    )
    if registration is None:
        _fail(session, p, company, pos, None, now, "unknown code")
        raise ApiError(
            404, "pairing_code_unknown", f"no device waits with pairing code {shown}; check the code on the terminal"
        )
    if registration.state == RegistrationStatus.CLAIMED:
        _fail(session, p, company, pos, registration, now, "already claimed")
        raise conflict("already_claimed", f"pairing code {shown} was already claimed")
    if registration.state == RegistrationStatus.EXPIRED or utc(registration.expires_at) <= now:
        expire_stale(session, now)
        _fail(session, p, company, pos, registration, now, "expired")
        raise ApiError(
            410,
            "pairing_code_expired",
            f"pairing code {shown} expired; the terminal shows a new one once it registers again",
        )
    device = session.get(Device, registration.device_id)
    if device is not None and (device.public_key is not None or device.company_id != company.id):
        _fail(session, p, company, pos, registration, now, "device id already in use")
        raise conflict("device_paired", f"device {registration.device_id} already belongs to a company")
    try:
        ca = load_device_ca(settings)
        certificate = issue_certificate(
            ca,
            check_csr(registration.csr_pem, registration.device_id),
            registration.device_id,
            settings.device_cert_days,
            now,
        )
    except (CaUnavailable, CsrError) as exc:
        raise unavailable(str(exc)) from None
    claimed = rows_matched(
        session,
        update(PairingRegistration)
        .where(PairingRegistration.id == registration.id, PairingRegistration.state == RegistrationStatus.PENDING)
        .values(
            state=RegistrationStatus.CLAIMED,
            open_device_id=None,
            open_code=None,
            claimed_at=now,
            claimed_by=p.user_id,
            company_id=company.id,
            point_of_sale_id=pos.id,
            certificate_pem=certificate_pem(certificate),
            certificate_serial=format(certificate.serial_number, "x"),
            certificate_not_after=certificate.not_valid_after_utc,
        )
        .execution_options(synchronize_session=False),
    )
    if claimed != 1:
        session.rollback()
        raise conflict("already_claimed", f"pairing code {shown} was claimed by a concurrent request")
    if device is None:
        session.add(
            Device(
                device_id=registration.device_id,
                company_id=company.id,
                point_of_sale_id=pos.id,
                public_key=registration.identity_key,
                created_at=now,
            )
        )
    else:
        device.point_of_sale_id, device.public_key = pos.id, registration.identity_key
    record_certificate(session, registration.device_id, certificate, CertificateSource.PAIRING, now)
    # The new terminal gets its company's cashier roster with the claim's commit.
    publish_rosters(session, company.id, [registration.device_id], by_user=p.user_id)
    _audit(
        session,
        AuditEvent.CLAIMED,
        now,
        device_id=registration.device_id,
        registration_id=registration.id,
        user_id=p.user_id,
        company_id=company.id,
        point_of_sale_id=pos.id,
        detail=(
            f"certificate serial {certificate.serial_number:x}, valid until "
            f"{certificate.not_valid_after_utc.isoformat()}"
        ),
    )
    session.commit()
    session.refresh(registration)
    return registration


def _fail(
    session: Session,
    p: Principal,
    company: Company,
    pos: PointOfSale,
    registration: PairingRegistration | None,
    now: datetime,
    reason: str,
) -> None:
    """Record a failed claim (committed even though the request fails: it counts for the limit)."""
    _audit(
        session,
        AuditEvent.CLAIM_FAILED,
        now,
        device_id=registration.device_id if registration else None,
        registration_id=registration.id if registration else None,
        user_id=p.user_id,
        company_id=company.id,
        point_of_sale_id=pos.id,
        detail=reason,
    )
    session.commit()
