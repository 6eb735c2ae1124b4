"""Commands for devices: recording one, and reading it back with the device's reply.

A command is recorded here and sent by the publisher (`outgoing.py`) until the device's
reply is recorded by the ingest (`command_replies`, found by correlation id = command id and
the device id), the command expires, or its attempts are used up. The device runs a
command id once (its inbox), so resends are harmless.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Select, and_, select
from sqlalchemy.orm import Session

from broker import contract as kc
from cloud_api.ingest.models import CommandReply
from cloud_api.pushes.jsondoc import json_problem
from cloud_api.pushes.models import DeviceCommand

# What an admin may send by hand. licence.release belongs to the licence migration flow,
# which issues it itself (with the licence id and epoch it is releasing).
ADMIN_COMMANDS = (kc.CommandName.PING, kc.CommandName.CONFIG_RELOAD, kc.CommandName.CASHIERS_LOAD)
_LONGEST_DEVICE_ID = "d" * 64


class InvalidCommandError(ValueError):
    """A command that cannot be sent (bad name or arguments, too large, NUL)."""


class CommandState(StrEnum):
    QUEUED = "queued"  # not yet accepted by the broker
    SENT = "sent"  # the broker has it (PUBACK); no reply yet, resent on schedule
    ANSWERED = "answered"  # the device's reply is recorded (ok or not: see the reply)
    EXPIRED = "expired"  # no reply before expires_at
    GAVE_UP = "gave_up"  # no reply after the last attempt


def check_command(name: str, args: Mapping[str, Any], expires_at: datetime) -> kc.Command:
    """The wire body of a command, if it can be sent; else InvalidCommandError saying why."""
    problem = json_problem(args)
    if problem is not None:
        raise InvalidCommandError(f"the arguments cannot be stored: {problem}")
    try:
        body = kc.Command(name=name, args=dict(args), expires_at=expires_at)
        kc.encode(kc.down_message(body, device_id=_LONGEST_DEVICE_ID))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InvalidCommandError(f"invalid command: {where}: {first['msg']}") from None
    except kc.PayloadTooLargeError:
        raise InvalidCommandError(
            f"the command is larger than {kc.MAX_PAYLOAD_BYTES} bytes with its envelope"
        ) from None
    return body


def create_command(
    session: Session,
    device_id: str,
    name: str,
    args: Mapping[str, Any],
    *,
    expires_in: timedelta,
    by_user: int | None = None,
) -> DeviceCommand:
    """Record a command for the device (inside the caller's transaction); the publisher
    sends it once that commits. The device must exist (`devices` row)."""
    now = datetime.now(UTC)
    body = check_command(name, args, now + expires_in)
    command = DeviceCommand(
        command_id=kc.uuid7(),
        device_id=device_id,
        name=body.name,
        args=body.args,
        created_by=by_user,
        created_at=now,
        expires_at=body.expires_at,
        attempts=0,
        last_sent_at=None,
        next_attempt_at=now,
        open=True,
        closed_at=None,
    )
    session.add(command)
    session.flush()
    return command


def command_state(command: DeviceCommand, reply: CommandReply | None, now: datetime) -> CommandState:
    if reply is not None:
        return CommandState.ANSWERED
    expires_at = _aware(command.expires_at)
    if command.open:
        if now >= expires_at:
            return CommandState.EXPIRED
        return CommandState.SENT if command.attempts else CommandState.QUEUED
    closed_at = _aware(command.closed_at) if command.closed_at else now
    return CommandState.EXPIRED if closed_at >= expires_at else CommandState.GAVE_UP


def _with_reply() -> Select[DeviceCommand, CommandReply]:
    # The reply must come from the device the command was for: a device cannot answer (or
    # spoil the answer of) another device's command by reusing its id.
    return select(DeviceCommand, CommandReply).outerjoin(
        CommandReply,
        and_(
            CommandReply.correlation_id == DeviceCommand.command_id, CommandReply.device_id == DeviceCommand.device_id
        ),
    )


def device_commands(
    session: Session, device_id: str, limit: int, offset: int
) -> list[tuple[DeviceCommand, CommandReply | None]]:
    """The device's commands, newest first, each with its reply (or None)."""
    query = (
        _with_reply()
        .where(DeviceCommand.device_id == device_id)
        .order_by(DeviceCommand.created_at.desc(), DeviceCommand.command_id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [(command, reply) for command, reply in session.execute(query)]


def device_command(
    session: Session, device_id: str, command_id: uuid.UUID
) -> tuple[DeviceCommand, CommandReply | None] | None:
    row = session.execute(
        _with_reply().where(DeviceCommand.device_id == device_id, DeviceCommand.command_id == command_id)
    ).first()
    return None if row is None else (row[0], row[1])


def _aware(moment: datetime) -> datetime:
    # SQLite hands stored timestamps back without a zone; every stored timestamp is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
