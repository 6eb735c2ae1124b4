"""Pushes to a company's devices: the desired config document, desired vs. reported state,
and commands with their replies. The publisher in `kassa-cloud worker` sends what is
recorded here (cloud_api/pushes)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from broker import contract as kc
from cloud_api.api.deps import PrincipalDep, SessionDep
from cloud_api.api.errors import ERROR_RESPONSES, invalid, not_found
from cloud_api.api.schemas import DEVICE_ID_PATTERN, MAX_ID, Utc
from cloud_api.ingest.models import CommandReply, DevicePresence, DeviceReport
from cloud_api.pushes import commands, desired_state
from cloud_api.pushes.models import DesiredState, DeviceCommand
from cloud_api.tenancy import access

router = APIRouter(tags=["pushes"], responses=ERROR_RESPONSES)
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
DeviceIdPath = Annotated[str, Path(pattern=DEVICE_ID_PATTERN, max_length=64)]
DomainName = Literal["cashiers", "config", "licence"]
AdminCommandName = Literal["ping", "config.reload", "cashiers.load"]
CommandStateName = Literal["queued", "sent", "answered", "expired", "gave_up"]
DEVICE_PATH = "/companies/{company_id}/devices/{device_id}"


# ------------------------------------------------------------------------------ bodies
class ConfigDocIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    doc: dict[str, Any] = Field(
        description="The whole config document (replaces the previous one); the device's config module validates it."
    )


class DesiredStateOut(BaseModel):
    device_id: str
    domain: DomainName
    version: int = Field(description="Raised by the cloud on every change; never reused.")
    doc: dict[str, Any]
    updated_at: Utc
    updated_by: int | None = Field(description="user who set it, if a person did")
    published_version: int = Field(description="newest version the broker has accepted (0: none yet)")
    published_at: Utc | None


class DomainStatus(BaseModel):
    domain: DomainName
    desired_version: int | None = Field(description="the cloud's newest version (null: no document)")
    published_version: int | None = Field(description="newest version the broker has accepted")
    applied_version: int | None = Field(description="version the device reported applied (its last up/state)")
    up_to_date: bool = Field(description="the device reported the desired version (true when there is none)")


class DeviceStateOut(BaseModel):
    device_id: str
    presence: Literal["online", "offline"] | None = Field(description="from the device's retained status")
    reported_at: Utc | None = Field(description="when the device made its latest state report")
    software_version: str | None
    up_to_date: bool = Field(description="every domain is up to date")
    domains: list[DomainStatus]


class CommandIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: AdminCommandName
    args: dict[str, Any] = Field(default_factory=dict)
    expires_in_s: int = Field(
        3600, ge=10, le=7 * 86400, description="the device refuses the command after this; resends stop"
    )


class ReplyError(BaseModel):
    code: str
    message: str


class CommandReplyOut(BaseModel):
    ok: bool
    result: dict[str, Any] | None = None
    error: ReplyError | None = None
    received_at: Utc


class CommandOut(BaseModel):
    id: uuid.UUID = Field(
        description="the command id: the message id of every send and the correlation id of the device's reply"
    )
    device_id: str
    name: str
    args: dict[str, Any]
    state: CommandStateName = Field(
        description="queued: not at the broker yet; sent: waiting for the reply "
        "(resent on schedule); answered: see reply; expired / gave_up: no reply came"
    )
    created_by: int | None
    created_at: Utc
    expires_at: Utc
    attempts: int = Field(description="sends the broker accepted")
    last_sent_at: Utc | None
    reply: CommandReplyOut | None


class CommandsPage(BaseModel):
    items: list[CommandOut]
    next_offset: int | None = Field(description="offset of the next page; null on the last page")


# ------------------------------------------------------------------------------ helpers
def _desired_out(row: DesiredState) -> DesiredStateOut:
    return DesiredStateOut(
        device_id=row.device_id,
        domain=row.domain,
        version=row.version,
        doc=row.doc,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
        published_version=row.published_version,
        published_at=row.published_at,
    )


def _command_out(command: DeviceCommand, reply: CommandReply | None) -> CommandOut:
    state = commands.command_state(command, reply, datetime.now(UTC))
    reply_out = None
    if reply is not None:
        body = reply.reply if isinstance(reply.reply, dict) else {}
        error = body.get("error")
        reply_out = CommandReplyOut(
            ok=reply.ok,
            result=body.get("result"),
            error=ReplyError(**error) if isinstance(error, dict) else None,
            received_at=reply.received_at,
        )
    return CommandOut(
        id=command.command_id,
        device_id=command.device_id,
        name=command.name,
        args=command.args,
        state=state.value,
        created_by=command.created_by,
        created_at=command.created_at,
        expires_at=command.expires_at,
        attempts=command.attempts,
        last_sent_at=command.last_sent_at,
        reply=reply_out,
    )


def _applied_versions(report: DeviceReport | None) -> tuple[dict[str, int], str | None]:
    """The versions the device reported, from its latest up/state (stored in wire form)."""
    if report is None or not isinstance(report.report, dict):
        return {}, None
    applied = report.report.get("applied_versions")
    versions = {str(k): v for k, v in applied.items() if isinstance(v, int)} if isinstance(applied, dict) else {}
    software = report.report.get("software_version")
    return versions, software if isinstance(software, str) else None


# ------------------------------------------------------------------------------ state
@router.put(
    f"{DEVICE_PATH}/state/config",
    response_model=DesiredStateOut,
    summary="Set a device's config document (company/owner managers, admins); pushed with a new version",
)
def set_config(
    company_id: IdPath, device_id: DeviceIdPath, body: ConfigDocIn, session: SessionDep, p: PrincipalDep
) -> DesiredStateOut:
    company = access.company_data(session, p, company_id, write=True)
    device = access.company_device(session, company, device_id)
    try:
        desired_state.set_doc(session, device.device_id, kc.StateDomain.CONFIG, body.doc, by_user=p.user_id)
    except desired_state.InvalidDocError as exc:
        raise invalid(str(exc)) from None
    session.commit()
    row = session.get(DesiredState, (device.device_id, kc.StateDomain.CONFIG.value), populate_existing=True)
    assert row is not None
    return _desired_out(row)


@router.get(
    f"{DEVICE_PATH}/state", response_model=DeviceStateOut, summary="Desired vs. reported state of a device, per domain"
)
def device_state(company_id: IdPath, device_id: DeviceIdPath, session: SessionDep, p: PrincipalDep) -> DeviceStateOut:
    company = access.company_data(session, p, company_id)
    device = access.company_device(session, company, device_id)
    desired = desired_state.desired_docs(session, device.device_id)
    report = session.get(DeviceReport, (device.device_id, "state"))
    presence = session.get(DevicePresence, device.device_id)
    applied, software = _applied_versions(report)
    domains = []
    for domain in kc.StateDomain:
        row = desired.get(domain.value)
        applied_version = applied.get(domain.value)
        up_to_date = row is None or (applied_version is not None and applied_version >= row.version)
        domains.append(
            DomainStatus(
                domain=domain.value,
                desired_version=row.version if row else None,
                published_version=row.published_version if row else None,
                applied_version=applied_version,
                up_to_date=up_to_date,
            )
        )
    state = presence.state if presence is not None and presence.state in ("online", "offline") else None
    return DeviceStateOut(
        device_id=device.device_id,
        presence=state,
        reported_at=report.reported_at if report else None,
        software_version=software,
        up_to_date=all(d.up_to_date for d in domains),
        domains=domains,
    )


@router.get(
    f"{DEVICE_PATH}/state/{{domain}}",
    response_model=DesiredStateOut,
    summary="A device's desired document of one domain",
)
def desired_doc(
    company_id: IdPath, device_id: DeviceIdPath, domain: DomainName, session: SessionDep, p: PrincipalDep
) -> DesiredStateOut:
    company = access.company_data(session, p, company_id)
    device = access.company_device(session, company, device_id)
    row = session.get(DesiredState, (device.device_id, domain))
    if row is None:
        raise not_found(f"{domain} document of device {device_id}")
    return _desired_out(row)


# ------------------------------------------------------------------------------ commands
@router.post(
    f"{DEVICE_PATH}/commands",
    status_code=201,
    response_model=CommandOut,
    summary="Send a command to a device (company/owner managers, admins); resent until it answers",
)
def send_command(
    company_id: IdPath, device_id: DeviceIdPath, body: CommandIn, session: SessionDep, p: PrincipalDep
) -> CommandOut:
    company = access.company_data(session, p, company_id, write=True)
    device = access.company_device(session, company, device_id)
    try:
        command = commands.create_command(
            session,
            device.device_id,
            body.name,
            body.args,
            expires_in=timedelta(seconds=body.expires_in_s),
            by_user=p.user_id,
        )
    except commands.InvalidCommandError as exc:
        raise invalid(str(exc)) from None
    session.commit()
    return _command_out(command, None)


@router.get(
    f"{DEVICE_PATH}/commands",
    response_model=CommandsPage,
    summary="A device's commands, newest first, with their replies",
)
def list_commands(
    company_id: IdPath,
    device_id: DeviceIdPath,
    session: SessionDep,
    p: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> CommandsPage:
    company = access.company_data(session, p, company_id)
    device = access.company_device(session, company, device_id)
    rows = commands.device_commands(session, device.device_id, limit + 1, offset)
    items = [_command_out(command, reply) for command, reply in rows[:limit]]
    return CommandsPage(items=items, next_offset=offset + limit if len(rows) > limit else None)


@router.get(
    f"{DEVICE_PATH}/commands/{{command_id}}", response_model=CommandOut, summary="One command with the device's reply"
)
def get_command(
    company_id: IdPath, device_id: DeviceIdPath, command_id: uuid.UUID, session: SessionDep, p: PrincipalDep
) -> CommandOut:
    company = access.company_data(session, p, company_id)
    device = access.company_device(session, company, device_id)
    found = commands.device_command(session, device.device_id, command_id)
    if found is None:
        raise not_found(f"command {command_id}")
    return _command_out(*found)
