"""Per-device sequence tracking: high-water mark, gaps opened and closed.

Invariant kept per device: every seq in 1..max_seq is either recorded in ingested_messages
or lies inside an open sequence_gaps row. So the high-water mark (every seq up to it is
recorded) is just below the first seq still missing in the lowest open gap.

Recorded means delivered and settled: applied, or rejected for good (the device drops a
rejected message and never sends its seq again), so a gap is only ever undelivered messages.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session

from cloud_api.db import table_of
from cloud_api.ingest.models import DeviceStream, IngestedMessage, SequenceGap
from cloud_api.ingest.sql import insert_rows, update_rows

log = logging.getLogger(__name__)

_streams = table_of(DeviceStream)
_gaps = table_of(SequenceGap)
_messages = table_of(IngestedMessage)
_STREAM_COLUMNS = ("device_id", "high_water", "max_seq", "last_seen_at", "last_boot_id")


class Sequenced(Protocol):
    """A newly recorded message, as far as its device's stream is concerned: an `Up`, or a
    `RefusedSeq`."""

    @property
    def device_id(self) -> str: ...
    @property
    def seq(self) -> int: ...
    @property
    def boot_id(self) -> uuid.UUID | None: ...


@dataclass(frozen=True, slots=True)
class RefusedSeq:
    """The seq of a message rejected before it could be read (its boot id is not known)."""

    device_id: str
    seq: int
    boot_id: None = None


@dataclass(frozen=True, slots=True)
class StreamPosition:
    high_water: int
    # A new message reused a seq already recorded (a restored or reinstalled device): its
    # high-water mark cannot vouch for the device's current outbox, so acks omit it.
    seq_reused: bool


@dataclass
class _Gap:
    id: int | None
    first: int
    last: int

    def holds(self, seq: int) -> bool:
        return self.first <= seq <= self.last


def track_sequences(session: Session, envelopes: list[Sequenced], now: datetime) -> dict[str, StreamPosition]:
    """Advance each device's stream over newly recorded messages (already inserted)."""
    by_device: dict[str, list[Sequenced]] = defaultdict(list)
    for envelope in envelopes:
        by_device[envelope.device_id].append(envelope)
    devices = sorted(by_device)
    if not devices:
        return {}
    insert_rows(
        session,
        _streams,
        ("device_id", "high_water", "max_seq"),
        [(device_id, 0, 0) for device_id in devices],
        conflict_key="device_id",
    )
    # Locked in device order: concurrent workers serialise per device, never deadlock.
    streams = {
        row.device_id: row
        for row in session.execute(
            select(_streams).where(_streams.c.device_id.in_(devices)).order_by(_streams.c.device_id).with_for_update()
        )
    }
    open_gaps: dict[str, list[_Gap]] = defaultdict(list)
    for row in session.execute(
        select(_gaps.c.id, _gaps.c.device_id, _gaps.c.first_missing, _gaps.c.last_missing)
        .where(_gaps.c.device_id.in_(devices), _gaps.c.closed_at.is_(None))
        .order_by(_gaps.c.device_id, _gaps.c.first_missing)
    ):
        open_gaps[row.device_id].append(_Gap(row.id, row.first_missing, row.last_missing))
    positions = {}
    rows = []
    for device_id in devices:
        positions[device_id], stream_row = _advance(
            session, streams[device_id], open_gaps[device_id], by_device[device_id], now
        )
        rows.append(stream_row)
    # One statement for every device of the batch (their rows are locked above).
    update_rows(session, _streams, "device_id", _STREAM_COLUMNS, rows, keep_when_null={"last_boot_id"})
    return positions


def current_high_water(session: Session, device_ids: list[str]) -> dict[str, int]:
    rows = session.execute(
        select(_streams.c.device_id, _streams.c.high_water).where(_streams.c.device_id.in_(device_ids))
    )
    return {row.device_id: row.high_water for row in rows}


def _advance(
    session: Session, stream, gaps: list[_Gap], envelopes: list[Sequenced], now: datetime
) -> tuple[StreamPosition, tuple]:
    """The device's new position, and its device_streams row in _STREAM_COLUMNS order."""
    device_id = stream.device_id
    old_max = stream.max_seq
    seqs = sorted({envelope.seq for envelope in envelopes})
    reused = len(seqs) < len(envelopes)
    filled = [seq for seq in seqs if seq <= old_max]
    for seq in filled:
        if not any(gap.holds(seq) for gap in gaps):
            reused = True
    if reused:
        log.warning(
            "device reused sequence numbers; high-water mark withheld from acks",
            extra={"device_id": device_id, "max_seq": old_max},
        )

    new_gaps = []
    previous = old_max
    for seq in (s for s in seqs if s > old_max):
        if seq > previous + 1:
            new_gaps.append(_Gap(None, previous + 1, seq - 1))
        previous = seq
    if new_gaps:
        session.execute(
            _gaps.insert(),
            [
                {"device_id": device_id, "first_missing": gap.first, "last_missing": gap.last, "detected_at": now}
                for gap in new_gaps
            ],
        )
        for gap in new_gaps:
            # debug: with several workers gaps open and close all the time; a lasting one
            # shows in the device API (open_gaps, GET .../gaps)
            log.debug(
                "sequence gap opened",
                extra={"device_id": device_id, "first_missing": gap.first, "last_missing": gap.last},
            )

    still_open = []
    for gap in gaps:
        if any(gap.holds(seq) for seq in filled) and _fully_recorded(session, device_id, gap):
            session.execute(update(_gaps).where(_gaps.c.id == gap.id).values(closed_at=now))
            log.debug(
                "sequence gap closed",
                extra={"device_id": device_id, "first_missing": gap.first, "last_missing": gap.last},
            )
        else:
            still_open.append(gap)
    still_open = sorted(still_open + new_gaps, key=lambda gap: gap.first)

    new_max = max(old_max, seqs[-1])
    high_water = _first_missing(session, device_id, still_open[0], stream.high_water) - 1 if still_open else new_max
    # The boot id of the newest message that has one (a message refused unread has none);
    # None keeps the stored one.
    last_boot_id = None
    if new_max > old_max:
        newer = [envelope for envelope in envelopes if envelope.seq > old_max and envelope.boot_id is not None]
        last_boot_id = max(newer, key=lambda envelope: envelope.seq).boot_id if newer else None
    row = (device_id, high_water, new_max, now, last_boot_id)
    return StreamPosition(high_water=high_water, seq_reused=reused), row


def _recorded_seqs(device_id: str, first: int, last: int) -> Select:
    return (
        select(_messages.c.seq)
        .distinct()
        .where(_messages.c.device_id == device_id, _messages.c.seq.between(first, last))
    )


def _fully_recorded(session: Session, device_id: str, gap: _Gap) -> bool:
    recorded = _recorded_seqs(device_id, gap.first, gap.last).subquery()
    count = session.execute(select(func.count()).select_from(recorded)).scalar_one()
    return count == gap.last - gap.first + 1


def _first_missing(session: Session, device_id: str, gap: _Gap, high_water: int) -> int:
    # Seqs below max(high_water + 1, gap.first) are all recorded (see the module docstring).
    expected = max(high_water + 1, gap.first)
    query = _recorded_seqs(device_id, expected, gap.last).order_by(_messages.c.seq)
    for seq in session.execute(query).scalars():
        if seq != expected:
            break
        expected += 1
    return expected
