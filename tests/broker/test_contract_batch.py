"""up/batch: several up envelopes in one publish, each still checked and answered on its own."""

from __future__ import annotations

import uuid

import pytest

from broker import contract as kc
from tests.support.sales import make_sale

DEVICE = "till-7"
BOOT = uuid.UUID("5f0c6d2e-8a41-4c7b-9e53-2d7f1a6b9c01")


def encoded(seq: int, body: kc.Body | None = None, device_id: str = DEVICE) -> tuple[uuid.UUID, bytes]:
    return kc.encode_up(body or make_sale(seq), device_id=device_id, seq=seq, boot_id=BOOT, clock_trusted=True)


def test_batch_topic_round_trip_and_foreign_topics() -> None:
    topic = kc.batch_topic(DEVICE)
    assert topic == "kassa/v1/dev/till-7/up/batch"
    assert kc.batch_device(topic) == DEVICE
    for other in (
        "kassa/v1/dev/till-7/up/sale",
        "kassa/v2/dev/till-7/up/batch",
        "kassa/v1/dev/a/b/up/batch",
        "kassa/v1/dev/+/up/batch",
        "kassa/v1/dev/kassa-cloud/up/batch",
        "",
        None,
    ):
        assert kc.batch_device(other) is None  # type: ignore[arg-type]
    with pytest.raises(kc.InvalidDeviceIdError):
        kc.batch_topic("a/b")


def test_every_line_parses_as_if_sent_alone() -> None:
    messages = [encoded(1), encoded(2), encoded(3, kc.Event(kind="drawer_opened", details={}))]
    payload = kc.encode_batch([p for _, p in messages])
    split = kc.split_batch(kc.batch_topic(DEVICE), payload)
    assert not isinstance(split, kc.Rejection)
    device_id, lines = split
    assert device_id == DEVICE and lines == [p for _, p in messages]
    for index, (message_id, alone) in enumerate(messages):
        parsed = kc.parse_batch_line(DEVICE, lines[index], index)
        assert isinstance(parsed, kc.Parsed)
        single = kc.parse_message(parsed.topic.topic, alone)
        assert isinstance(single, kc.Parsed) and parsed.envelope == single.envelope
        assert parsed.envelope.id == message_id


def test_encode_batch_refuses_what_cannot_be_one_publish() -> None:
    _, one = encoded(1)
    with pytest.raises(ValueError, match="2-500"):
        kc.encode_batch([one])
    with pytest.raises(ValueError, match="2-500"):
        kc.encode_batch([one] * (kc.MAX_BATCH_MESSAGES + 1))
    with pytest.raises(ValueError, match="newlines"):
        kc.encode_batch([one, b'{"v":1,\n"id":"x"}'])
    with pytest.raises(ValueError, match="limit"):
        kc.encode_batch([one] * (kc.MAX_BATCH_BYTES // len(one) + 1))


def test_whole_batch_refusals_say_why() -> None:
    _, one = encoded(1)
    cases = {
        ("kassa/v1/dev/till-7/up/sale", one): kc.RejectReason.BAD_TOPIC,
        (kc.batch_topic(DEVICE), b"x" * (kc.MAX_BATCH_BYTES + 1)): kc.RejectReason.TOO_LARGE,
        (kc.batch_topic(DEVICE), b""): kc.RejectReason.SCHEMA,
        (kc.batch_topic(DEVICE), b"\n".join([b"{}"] * (kc.MAX_BATCH_MESSAGES + 1))): kc.RejectReason.SCHEMA,
    }
    for (topic, payload), reason in cases.items():
        result = kc.split_batch(topic, payload)
        assert isinstance(result, kc.Rejection) and result.reason is reason, (topic, result)
        assert result.detail
    # a trailing newline is tolerated
    ok = kc.split_batch(kc.batch_topic(DEVICE), one + b"\n" + one + b"\n")
    assert not isinstance(ok, kc.Rejection) and len(ok[1]) == 2


def test_bad_lines_are_rejected_one_by_one_with_the_id_when_readable() -> None:
    sale_id, sale = encoded(1)
    foreign_id, foreign = encoded(2, device_id="till-8")
    ack_line = kc.encode(kc.down_message(kc.Ack(acked_ids=[sale_id]), device_id=DEVICE))
    broken = sale.replace(b'"total":', b'"total":-', 1)
    cases = [
        (b"not json", kc.RejectReason.NOT_JSON, None),
        (b"[1, 2]", kc.RejectReason.UNKNOWN_TYPE, None),
        (ack_line, kc.RejectReason.UNKNOWN_TYPE, "any"),  # a down message cannot ride in a batch
        (foreign, kc.RejectReason.WRONG_DEVICE, foreign_id),
        (broken, kc.RejectReason.SCHEMA, sale_id),
    ]
    for index, (line, reason, message_id) in enumerate(cases):
        result = kc.parse_batch_line(DEVICE, line, index)
        assert isinstance(result, kc.Rejection) and result.reason is reason, (line[:40], result)
        assert result.device_id == DEVICE
        if message_id not in (None, "any"):
            assert result.message_id == message_id
        if reason in (kc.RejectReason.NOT_JSON, kc.RejectReason.UNKNOWN_TYPE):
            assert f"batch line {index + 1}" in result.detail


def test_a_line_of_a_type_newer_than_the_receiver_keeps_its_id_and_seq() -> None:
    # A terminal upgraded before the cloud: a v1 up envelope of a type the cloud does not know.
    message_id, line = encoded(7, kc.Event(kind="drawer.opened", details={}))
    newer = line.replace(b'"type":"up.event"', b'"type":"up.coupon"')
    result = kc.parse_batch_line(DEVICE, newer, 0)
    assert isinstance(result, kc.Rejection) and result.reason is kc.RejectReason.UNKNOWN_TYPE
    assert (result.message_id, result.seq) == (message_id, 7)
    ack_line = kc.encode(kc.down_message(kc.Ack(acked_ids=[message_id]), device_id=DEVICE))
    assert kc.parse_batch_line(DEVICE, ack_line, 0).seq is None  # type: ignore[union-attr]
