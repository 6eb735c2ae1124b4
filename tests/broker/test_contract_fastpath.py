"""encode_up (the outbox's fast path) must produce exactly what the envelope path produces."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from broker import contract as kc
from broker.contract.examples import examples

UP_BODIES = [e.envelope for e in examples() if e.envelope.type.is_up]


@pytest.mark.parametrize("envelope", UP_BODIES, ids=lambda e: str(e.type))
@pytest.mark.parametrize("trusted", [True, False])
def test_fast_path_is_byte_identical(envelope: kc.Envelope, trusted: bool) -> None:
    when = datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=timezone(timedelta(hours=3)))
    boot = uuid.UUID("5f0c6d2e-8a41-4c7b-9e53-2d7f1a6b9c01")
    message_id = kc.uuid7()
    slow = kc.encode(
        kc.up_message(
            envelope.body,
            device_id="pos-1",
            seq=77,
            boot_id=boot,
            clock_trusted=trusted,
            correlation_id=envelope.correlation_id,
            created_at=when,
            message_id=message_id,
        )
    )
    got_id, fast = kc.encode_up(
        envelope.body,
        device_id="pos-1",
        seq=77,
        boot_id=boot,
        clock_trusted=trusted,
        correlation_id=envelope.correlation_id,
        created_at=when,
        message_id=message_id,
    )
    assert got_id == message_id
    assert fast == slow
    _, prepared = kc.encode_up(
        envelope.body,
        device_id="pos-1",
        seq=77,
        boot_id=boot,
        clock_trusted=trusted,
        correlation_id=envelope.correlation_id,
        created_at=when,
        message_id=message_id,
        body_json=kc.body_json_of(envelope.body),
    )
    assert prepared == slow
    parsed = kc.parse_message(kc.up_topic("pos-1", envelope.type), fast)
    assert isinstance(parsed, kc.Parsed) and parsed.body == envelope.body


def test_fast_path_refuses_what_the_envelope_refuses() -> None:
    body = UP_BODIES[0].body
    with pytest.raises(ValueError):
        kc.encode_up(body, device_id="bad/device", seq=1, boot_id=kc.uuid7(), clock_trusted=True)
    with pytest.raises(ValueError):
        kc.encode_up(body, device_id="pos-1", seq=0, boot_id=kc.uuid7(), clock_trusted=True)
    with pytest.raises(TypeError):
        kc.encode_up(kc.Ack(acked_ids=[kc.uuid7()]), device_id="pos-1", seq=1, boot_id=kc.uuid7(), clock_trusted=True)
    with pytest.raises(kc.PayloadTooLargeError):
        kc.encode_up(
            kc.Event(kind="big", details={"x": "y" * kc.MAX_PAYLOAD_BYTES}),
            device_id="pos-1",
            seq=1,
            boot_id=kc.uuid7(),
            clock_trusted=True,
        )


def test_a_draft_takes_any_seq_and_equals_the_full_encoding() -> None:
    body = UP_BODIES[0].body
    boot, message_id = kc.uuid7(), kc.uuid7()
    when = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    draft = kc.draft_up(
        body, device_id="pos-1", boot_id=boot, clock_trusted=True, created_at=when, message_id=message_id
    )
    assert draft.message_id == message_id and draft.type is UP_BODIES[0].type
    for seq in (1, 9, 10, 123_456_789, 2**53):
        _, whole = kc.encode_up(
            body, device_id="pos-1", seq=seq, boot_id=boot, clock_trusted=True, created_at=when, message_id=message_id
        )
        assert draft.payload(seq) == whole
    with pytest.raises(ValueError):
        draft.payload(0)
    with pytest.raises(kc.PayloadTooLargeError):  # refused when drafted, before any transaction
        kc.draft_up(
            kc.Event(kind="big", details={"x": "y" * kc.MAX_PAYLOAD_BYTES}),
            device_id="pos-1",
            boot_id=boot,
            clock_trusted=True,
        )
