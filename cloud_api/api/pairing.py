"""Pairing endpoints: devices register and poll (no token: they sign with their identity key);
company admins claim a waiting device by its code and read the pairing audit.

Rules in cloud_api/pairing/service.py; the wire formats in broker/contract/pairing.py.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from broker.contract.pairing import (
    BrokerCredentials,
    PairingCode,
    PollReply,
    PollRequest,
    Registration,
    RegistrationRequest,
    RenewalRequest,
)
from cloud_api.api.deps import PrincipalDep, SessionDep
from cloud_api.api.errors import ERROR_RESPONSES, ErrorResponse, invalid
from cloud_api.api.schemas import MAX_ID, Id, Utc
from cloud_api.pairing import service
from cloud_api.pairing.limits import RateLimiter, client_address, read_body
from cloud_api.pairing.models import PairingAudit
from cloud_api.settings import CloudSettings
from cloud_api.tenancy import access

router = APIRouter(tags=["pairing"])
_Body = TypeVar("_Body", bound=BaseModel)
_Reply = TypeVar("_Reply")
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
_limiter_lock = threading.Lock()

DEVICE_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in [
        (401, "bad_signature: the proof is not signed by the device's identity key"),
        (403, "device_revoked: renewal of a device whose certificates were revoked"),
        (404, "not_registered: poll before registering; not_paired: renewal of a device that is not paired"),
        (409, "device_paired, device_id_taken, pairing_code_taken"),
        (410, "registration_expired: register again"),
        (413, "too_large: body over 16 KiB"),
        (422, "invalid_request, invalid_csr, clock_skew"),
        (
            429,
            "rate_limited (see Retry-After): too many requests from this address, or a renewal moments after the last",
        ),
        (503, "pairing_unavailable: the cloud has no device CA configured"),
    ]
}
CLAIM_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    409: {"model": ErrorResponse, "description": "already_claimed, device_paired"},
    410: {"model": ErrorResponse, "description": "pairing_code_expired"},
    429: {"model": ErrorResponse, "description": "too_many_attempts: too many failed claims by this company"},
    503: {"model": ErrorResponse, "description": "pairing_unavailable"},
}


class ClaimIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pairing_code: PairingCode = Field(description="The code the terminal shows (`kassactl pairing`), e.g. 7KQ-2M9-XDT.")
    point_of_sale_id: Id = Field(description="The company's point of sale the terminal serves.")


class ClaimOut(BaseModel):
    device_id: str
    company_id: int
    point_of_sale_id: int
    claimed_at: Utc
    claimed_by: int = Field(description="The user who claimed it.")
    certificate_serial: str = Field(description="Serial number (hex) of the broker certificate issued.")
    certificate_not_after: Utc


class PairingEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    at: Utc
    event: str = Field(description="registered, reregistered, claimed, claim_failed or certificate_delivered")
    device_id: str | None
    user_id: int | None
    point_of_sale_id: int | None
    detail: str | None


def _now() -> datetime:
    return datetime.now(UTC)


def _settings(request: Request) -> CloudSettings:
    return request.app.state.settings


def _check_rate(request: Request) -> str:
    """Count the request against its client address; returns that address."""
    state = request.app.state
    limiter = getattr(state, "pairing_limiter", None)
    if limiter is None:
        with _limiter_lock:
            limiter = getattr(state, "pairing_limiter", None)
            if limiter is None:
                limiter = state.pairing_limiter = RateLimiter(_settings(request).pairing_requests_per_minute)
    client = client_address(request)
    limiter.check(client)
    return client


def _parse(model: type[BaseModel], body: bytes) -> Any:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(part) for part in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:5]]
        raise invalid("; ".join(problems)) from None


def _body_schema(model: type[BaseModel]) -> dict[str, Any]:
    # These endpoints read their body themselves (size limit before parsing); this puts it in the spec.
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


@router.post(
    "/pairing/registrations",
    response_model=Registration,
    status_code=201,
    responses={
        200: {"model": Registration, "description": "the same device (same identity key) registered before"},
        **DEVICE_RESPONSES,
    },
    openapi_extra=_body_schema(RegistrationRequest),
    summary="A device registers for pairing (no token; signed with its identity key). 201 new, 200 known",
)
async def register(request: Request) -> JSONResponse:
    client = _check_rate(request)
    body = _parse(RegistrationRequest, await read_body(request))

    def work() -> tuple[Registration, bool]:
        with Session(request.app.state.engine, expire_on_commit=False) as session:
            registration, created = service.register(session, _settings(request), body, client, _now())
            return service.registration_reply(registration, _settings(request)), created

    reply, created = await run_in_threadpool(work)
    return JSONResponse(reply.model_dump(mode="json"), status_code=201 if created else 200)


async def _signed_request(
    request: Request, model: type[_Body], rule: Callable[[Session, CloudSettings, _Body, datetime], _Reply]
) -> _Reply:
    """A device's signed request: counted against its address, read with the size limit,
    parsed, and answered by `rule` in a session of its own (off the event loop)."""
    _check_rate(request)
    body = _parse(model, await read_body(request))

    def work() -> _Reply:
        with Session(request.app.state.engine, expire_on_commit=False) as session:
            return rule(session, _settings(request), body, _now())

    return await run_in_threadpool(work)


@router.post(
    "/pairing/poll",
    response_model=PollReply,
    responses=DEVICE_RESPONSES,
    openapi_extra=_body_schema(PollRequest),
    summary="A registered device asks whether it was claimed; the reply holds its certificate once it was",
)
async def poll(request: Request) -> PollReply:
    return await _signed_request(request, PollRequest, service.poll)


@router.post(
    "/pairing/renewals",
    response_model=BrokerCredentials,
    responses=DEVICE_RESPONSES,
    openapi_extra=_body_schema(RenewalRequest),
    summary=(
        "A paired device asks for a new broker certificate before its own runs out (no token; signed with "
        "its identity key)"
    ),
)
async def renew(request: Request) -> BrokerCredentials:
    return await _signed_request(request, RenewalRequest, service.renew)


@router.post(
    "/companies/{company_id}/pairing/claims",
    status_code=201,
    response_model=ClaimOut,
    responses=CLAIM_RESPONSES,
    summary="Claim the device showing this pairing code into one of the company's points of sale",
)
def claim(company_id: IdPath, body: ClaimIn, request: Request, session: SessionDep, p: PrincipalDep) -> ClaimOut:
    company = access.company_data(session, p, company_id, write=True)
    pos = access.visible_point_of_sale(session, company, body.point_of_sale_id)
    registration = service.claim(session, _settings(request), p, company, pos, body.pairing_code, _now())
    assert (
        registration.claimed_at and registration.certificate_serial and registration.certificate_not_after
    )  # set by the claim
    return ClaimOut(
        device_id=registration.device_id,
        company_id=company.id,
        point_of_sale_id=pos.id,
        claimed_at=registration.claimed_at,
        claimed_by=p.user_id,
        certificate_serial=registration.certificate_serial,
        certificate_not_after=registration.certificate_not_after,
    )


@router.get(
    "/companies/{company_id}/pairing/events",
    response_model=list[PairingEventOut],
    responses=ERROR_RESPONSES,
    summary="The company's pairing audit: claims, failed claims, certificates fetched; newest first",
)
def list_events(
    company_id: IdPath, session: SessionDep, p: PrincipalDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[PairingAudit]:
    company = access.company_data(session, p, company_id)
    return list(
        session.scalars(
            select(PairingAudit)
            .where(PairingAudit.company_id == company.id)
            .order_by(PairingAudit.id.desc())
            .limit(limit)
        )
    )
