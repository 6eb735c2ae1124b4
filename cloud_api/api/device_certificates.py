"""Device broker certificates: the list per device, revocation (one call shuts a retired or
stolen terminal out of the broker), and the device CA's CRL for the broker host.

Rules in cloud_api/pairing/revocation.py; renewal (by the device itself) in api/pairing.py.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from cloud_api.api.deps import PrincipalDep, SessionDep
from cloud_api.api.errors import ERROR_RESPONSES, ApiError, ErrorResponse
from cloud_api.api.schemas import DEVICE_ID_PATTERN, MAX_ID, Utc
from cloud_api.pairing.certificates import CaUnavailable, load_device_ca
from cloud_api.pairing.models import AuditEvent, PairingAudit
from cloud_api.pairing.revocation import (
    current_crl,
    device_certificates,
    has_certificates,
    issue_crl,
    revoke_device,
    write_crl_file,
)
from cloud_api.pairing.service import unavailable
from cloud_api.settings import CloudSettings
from cloud_api.tenancy import access
from cloud_api.tenancy.tokens import utcnow

router = APIRouter(tags=["devices"])
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
DeviceIdPath = Annotated[str, Path(pattern=DEVICE_ID_PATTERN, max_length=64)]
_UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorResponse, "description": "pairing_unavailable: the cloud has no device CA configured"}
}
_UNKNOWN: dict[int | str, dict[str, Any]] = {
    409: {
        "model": ErrorResponse,
        "description": "certificates_unknown: no certificate of this device is known to the cloud",
    }
}


class CertificateOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    serial: str = Field(description="Serial number, hex.")
    source: str = Field(description="pairing, renewal or imported (made elsewhere, named here to be revoked)")
    not_before: Utc
    not_after: Utc
    issued_at: Utc
    revoked_at: Utc | None
    revocation_reason: str | None


class RevokeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field("revoked", min_length=1, max_length=200, description="Why, for the audit: retired, stolen, ...")


class RevokeOut(BaseModel):
    device_id: str
    revoked: list[str] = Field(description="Serials revoked by this call (empty when all already were).")
    crl_number: int = Field(description="Number of the CRL that lists them (GET /pki/device-crl.pem).")
    crl_written_to: str | None = Field(
        description="The file the CRL was written to on this host (device_crl_file), if set."
    )


def _settings(request: Request) -> CloudSettings:
    return request.app.state.settings


@router.get(
    "/companies/{company_id}/devices/{device_id}/certificates",
    response_model=list[CertificateOut],
    responses=ERROR_RESPONSES,
    summary="The device's broker certificates, newest first, with their revocation",
)
def list_certificates(
    company_id: IdPath, device_id: DeviceIdPath, session: SessionDep, p: PrincipalDep
) -> list[CertificateOut]:
    device = access.company_device(session, access.company_data(session, p, company_id), device_id)
    return [CertificateOut.model_validate(row) for row in device_certificates(session, device.device_id)]


@router.post(
    "/companies/{company_id}/devices/{device_id}/certificates/revoke",
    response_model=RevokeOut,
    responses={**ERROR_RESPONSES, **_UNAVAILABLE, **_UNKNOWN},
    summary="Shut a retired or stolen terminal out of the broker: revoke all its certificates, publish the CRL, "
    "refuse its renewals (company/owner managers, admins)",
)
def revoke(
    company_id: IdPath,
    device_id: DeviceIdPath,
    request: Request,
    session: SessionDep,
    p: PrincipalDep,
    body: RevokeIn | None = None,
) -> RevokeOut:
    device = access.company_device(session, access.company_data(session, p, company_id, write=True), device_id)
    reason = body.reason if body else "revoked"
    try:
        ca = load_device_ca(_settings(request))
    except CaUnavailable as exc:
        raise unavailable(str(exc)) from None
    if not has_certificates(session, device.device_id):
        raise ApiError(
            409,
            "certificates_unknown",
            f"the cloud knows no certificate of {device.device_id}: it was not paired through the cloud. Revoke the "
            "certificate it was given with `kassa-cloud pki revoke --certificate FILE` (see docs/deployment.md)",
        )
    now = utcnow()
    serials = revoke_device(session, device, by_user=p.user_id, reason=reason, now=now)
    try:
        crl = issue_crl(session, ca, now)
        session.add(
            PairingAudit(
                at=now,
                event=AuditEvent.CERTIFICATES_REVOKED,
                device_id=device.device_id,
                user_id=p.user_id,
                company_id=device.company_id,
                detail=f"{reason}; serials {', '.join(serials) or 'none new'}; CRL {crl.number}",
            )
        )
        session.commit()
    except IntegrityError:  # two first-ever CRLs at once: the other one is stored, try again
        session.rollback()
        raise ApiError(409, "conflict", "another revocation signed the CRL at the same moment; try again") from None
    try:
        written = write_crl_file(_settings(request).device_crl_file, crl.crl_pem)
    except OSError as exc:
        raise ApiError(
            500,
            "crl_write_failed",
            f"revoked, and CRL {crl.number} signed, but writing it to "
            f"{_settings(request).device_crl_file} failed ({exc.strerror}); the broker still has the previous "
            "CRL: fix the file's directory and call again (revoking twice changes nothing)",
        ) from None
    return RevokeOut(
        device_id=device.device_id,
        revoked=serials,
        crl_number=crl.number,
        crl_written_to=str(written) if written else None,
    )


@router.get(
    "/pki/device-crl.pem",
    response_class=Response,
    responses={200: {"content": {"application/pkix-crl": {}}}, **_UNAVAILABLE},
    summary="The device CA's newest certificate revocation list, PEM (no token: a CRL is public and signed)",
)
async def device_crl(request: Request) -> Response:
    def work() -> str:
        with Session(request.app.state.engine) as session:
            return current_crl(session, _settings(request), utcnow()).crl_pem

    try:
        pem = await run_in_threadpool(work)
    except CaUnavailable as exc:
        raise unavailable(str(exc)) from None
    return Response(pem, media_type="application/pkix-crl", headers={"Cache-Control": "no-cache"})
