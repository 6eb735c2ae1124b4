"""The publisher's side of the database: what is due to be sent, and recording what the
broker accepted. Each function runs inside the caller's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, bindparam, exists, or_, select, tuple_, update
from sqlalchemy.orm import Session

from broker import contract as kc
from cloud_api.db import table_of
from cloud_api.ingest.models import CommandReply
from cloud_api.pushes.models import DesiredState, DeviceCommand

_state = table_of(DesiredState)
_commands = table_of(DeviceCommand)
_replies = table_of(CommandReply)

# What the publisher tracks a message by until its PUBACK: one message per key in flight,
# so two versions of one document can never overtake each other on the way to the broker.
Key = tuple[str, ...]


def _aware(moment: datetime) -> datetime:
    # SQLite hands stored timestamps back without a zone; every stored timestamp is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class DocToSend:
    device_id: str
    domain: str
    version: int
    doc: dict[str, Any]
    updated_at: datetime

    @property
    def key(self) -> Key:
        return ("state", self.device_id, self.domain)

    def publication(self) -> kc.Publication:
        body = kc.StateDoc(
            domain=kc.StateDomain(self.domain), version=self.version, doc=self.doc, issued_at=_aware(self.updated_at)
        )
        return kc.publication(kc.down_message(body, device_id=self.device_id))


@dataclass(frozen=True, slots=True)
class CommandToSend:
    command_id: uuid.UUID
    device_id: str
    name: str
    args: dict[str, Any]
    expires_at: datetime
    attempts: int

    @property
    def key(self) -> Key:
        return ("cmd", str(self.command_id))

    def publication(self) -> kc.Publication:
        # Every resend carries the command id as its message id: the device runs it once.
        body = kc.Command(name=self.name, args=self.args, expires_at=_aware(self.expires_at))
        return kc.publication(kc.down_message(body, device_id=self.device_id, message_id=self.command_id))


def unpublished_docs(session: Session, page_size: int = 100) -> Iterator[DocToSend]:
    """Documents whose latest version the broker has not accepted yet, oldest change first,
    read a page at a time (documents may be up to 2 MiB: the caller stops reading when its
    wave is full)."""
    order = (_state.c.updated_at, _state.c.device_id, _state.c.domain)
    after: tuple[Any, ...] | None = None
    while True:
        query = (
            select(_state.c.device_id, _state.c.domain, _state.c.version, _state.c.doc, _state.c.updated_at)
            .where(_state.c.publish_pending.is_(True))
            .order_by(*order)
            .limit(page_size)
        )
        if after is not None:
            query = query.where(tuple_(*order) > tuple_(*after))
        page = [DocToSend(*row) for row in session.execute(query)]
        yield from page
        if len(page) < page_size:
            return
        last = page[-1]
        after = (last.updated_at, last.device_id, last.domain)


def mark_docs_published(session: Session, published: list[tuple[str, str, int]], now: datetime) -> None:
    """Record versions the broker PUBACKed. A version older than the one recorded changes
    nothing; the same one again (published anew, see stale.py) moves `published_at`;
    `publish_pending` stays set when a newer version was written meanwhile."""
    if not published:
        return
    statement = (
        update(_state)
        .where(
            _state.c.device_id == bindparam("b_device"),
            _state.c.domain == bindparam("b_domain"),
            _state.c.published_version <= bindparam("b_version"),
        )
        .values(
            published_version=bindparam("b_version"),
            published_at=now,
            publish_pending=_state.c.version != bindparam("b_version"),
        )
    )
    session.execute(statement, [{"b_device": d, "b_domain": dom, "b_version": v} for d, dom, v in sorted(published)])


def close_finished_commands(session: Session, now: datetime, max_attempts: int) -> int:
    """Stop sending commands that were answered, expired, or had their last attempt and
    its wait; returns how many were closed. Only reads when there is nothing to close, so an
    idle publisher takes no write lock (SQLite has one for the whole database)."""
    answered = exists().where(
        _replies.c.correlation_id == _commands.c.command_id, _replies.c.device_id == _commands.c.device_id
    )
    finished = list(
        session.scalars(
            select(_commands.c.command_id)
            .where(
                _commands.c.open.is_(True),
                or_(
                    answered,
                    _commands.c.expires_at <= now,
                    and_(_commands.c.attempts >= max_attempts, _commands.c.next_attempt_at <= now),
                ),
            )
            .limit(1000)
        )
    )
    if not finished:
        return 0
    session.execute(
        update(_commands).where(_commands.c.command_id.in_(sorted(finished))).values(open=False, closed_at=now)
    )
    return len(finished)


def due_commands(session: Session, now: datetime, limit: int, max_attempts: int) -> list[CommandToSend]:
    """Open commands whose next attempt is due, the longest waiting first (not those past
    their last attempt or expiry: `close_finished_commands` closes them)."""
    rows = session.execute(
        select(
            _commands.c.command_id,
            _commands.c.device_id,
            _commands.c.name,
            _commands.c.args,
            _commands.c.expires_at,
            _commands.c.attempts,
        )
        .where(
            _commands.c.open.is_(True),
            _commands.c.next_attempt_at <= now,
            _commands.c.attempts < max_attempts,
            _commands.c.expires_at > now,
        )
        .order_by(_commands.c.next_attempt_at, _commands.c.command_id)
        .limit(limit)
    )
    return [CommandToSend(*row) for row in rows]


def mark_commands_sent(session: Session, sent: list[tuple[uuid.UUID, datetime]], now: datetime) -> None:
    """Record sends the broker PUBACKed: one more attempt, and when to send again."""
    if not sent:
        return
    statement = (
        update(_commands)
        .where(_commands.c.command_id == bindparam("b_id"))
        .values(attempts=_commands.c.attempts + 1, last_sent_at=now, next_attempt_at=bindparam("b_next"))
    )
    session.execute(statement, [{"b_id": command_id, "b_next": next_at} for command_id, next_at in sorted(sent)])
