"""Message schemas: round trips, money rules, totals, envelope direction rules."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from broker.contract import (
    Ack,
    AckRejection,
    Command,
    Envelope,
    Event,
    MessageType,
    Parsed,
    PayloadTooLargeError,
    Payment,
    PaymentMethod,
    Presence,
    Refund,
    RefundLine,
    RefundScope,
    Reply,
    Sale,
    StateDoc,
    StateDomain,
    down_message,
    encode,
    line_gross,
    message_type_of,
    parse_message,
    publication,
    status_message,
    up_message,
    uuid7,
    will_publication,
)
from broker.contract.examples import DEVICE_ID, examples

BOOT = uuid.uuid4()
EXAMPLES = {example.name: example.envelope for example in examples()}


def sale_body(**changes) -> dict:
    body = EXAMPLES["up.sale"].body.model_dump(mode="json")
    body.update(changes)
    return body


def refund_body(**changes) -> dict:
    body = EXAMPLES["up.refund"].body.model_dump(mode="json")
    body.update(changes)
    return body


def test_examples_cover_every_message_type():
    assert {envelope.type for envelope in EXAMPLES.values()} == set(MessageType)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_message_round_trips_through_the_wire(name):
    envelope = EXAMPLES[name]
    pub = publication(envelope)
    assert pub.qos == 1
    assert pub.retain == (envelope.type in (MessageType.STATE, MessageType.STATUS))
    parsed = parse_message(pub.topic, pub.payload)
    assert isinstance(parsed, Parsed)
    assert parsed.envelope == envelope
    assert type(parsed.body) is type(envelope.body)
    assert encode(parsed.envelope) == pub.payload


def test_encoding_is_compact_utf8_with_absent_optionals():
    envelope = up_message(
        Event(kind="cashier.login", details={"name": "Zoë"}),
        device_id=DEVICE_ID,
        seq=1,
        boot_id=BOOT,
        clock_trusted=False,
    )
    payload = encode(envelope)
    assert b" " not in payload.replace(b'"Zo\xc3\xab"', b"")
    assert "Zoë".encode() in payload
    decoded = json.loads(payload)
    assert list(decoded)[:3] == ["v", "id", "type"]
    assert "correlation_id" not in decoded and "cashier_id" not in decoded["body"]
    assert decoded["clock_trusted"] is False
    assert decoded["created_at"].endswith("Z")


def test_builders_infer_the_type_and_fill_in_ids_and_time():
    before = datetime.now(UTC) - timedelta(seconds=1)
    envelope = down_message(Command(name="config.reload"), device_id=DEVICE_ID)
    assert envelope.type is MessageType.COMMAND
    assert envelope.id.version == 7
    assert envelope.created_at >= before
    assert envelope.seq is None and envelope.boot_id is None
    assert message_type_of(EXAMPLES["up.licence.bind_request"].body) is MessageType.LICENCE


def test_builders_refuse_bodies_of_the_other_direction():
    with pytest.raises(TypeError):
        up_message(Command(name="ping"), device_id=DEVICE_ID, seq=1, boot_id=BOOT, clock_trusted=True)
    with pytest.raises(TypeError):
        down_message(EXAMPLES["up.sale"].body, device_id=DEVICE_ID)
    with pytest.raises(TypeError):
        message_type_of({"name": "ping"})


def test_up_messages_need_seq_and_boot_id_down_messages_refuse_seq():
    raw = json.loads(encode(EXAMPLES["up.sale"]))
    for field in ("seq", "boot_id"):
        broken = {k: v for k, v in raw.items() if k != field}
        with pytest.raises(ValidationError, match=field):
            Envelope.model_validate(broken)
    down = json.loads(encode(EXAMPLES["down.cmd"]))
    with pytest.raises(ValidationError, match="seq"):
        Envelope.model_validate({**down, "seq": 5})


def test_reply_needs_the_command_id_as_correlation_id():
    with pytest.raises(ValidationError, match="correlation_id"):
        up_message(Reply(ok=True), device_id=DEVICE_ID, seq=3, boot_id=BOOT, clock_trusted=True)
    command = down_message(Command(name="ping"), device_id=DEVICE_ID)
    reply = up_message(
        Reply(ok=True, result={"pong": True}),
        device_id=DEVICE_ID,
        seq=3,
        boot_id=BOOT,
        clock_trusted=True,
        correlation_id=command.id,
    )
    assert reply.correlation_id == command.id


def test_reply_ok_and_error_are_exclusive():
    with pytest.raises(ValidationError):
        Reply(ok=True, error={"code": "x", "message": "y"})
    with pytest.raises(ValidationError):
        Reply(ok=False)
    assert Reply(ok=False, error={"code": "expired", "message": "too late"}).error.code == "expired"


def test_timestamps_are_normalised_to_utc_milliseconds_and_must_be_aware():
    raw = json.loads(encode(EXAMPLES["down.cmd"]))
    envelope = Envelope.model_validate({**raw, "created_at": "2025-03-01T12:30:00.123456+03:00"})
    assert envelope.created_at == datetime(2025, 3, 1, 9, 30, 0, 123000, tzinfo=UTC)
    for bad in ("2025-03-01T12:30:00", 1740821400, 1740821400.5):
        with pytest.raises(ValidationError):
            Envelope.model_validate({**raw, "created_at": bad})


def test_message_id_must_be_uuid7():
    raw = json.loads(encode(EXAMPLES["down.cmd"]))
    with pytest.raises(ValidationError, match="UUIDv7"):
        Envelope.model_validate({**raw, "id": str(uuid.uuid4())})


def test_status_and_will_payloads():
    online = status_message(Presence.ONLINE, device_id=DEVICE_ID, boot_id=BOOT, clock_trusted=True)
    assert publication(online).retain and online.topic.endswith("/status")
    will = will_publication(DEVICE_ID, BOOT, clock_trusted=True)
    parsed = parse_message(will.topic, will.payload)
    assert isinstance(parsed, Parsed)
    assert parsed.body.state is Presence.OFFLINE
    assert parsed.envelope.boot_id == BOOT
    assert (will.qos, will.retain) == (1, True)


# --- money -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"total": 2040.0},
        {"change": 60.5},
        {"tax_total": 246.0},
        {"payments": [{"method": "cash", "amount": 2100.0}]},
    ],
)
def test_float_money_is_rejected(change):
    with pytest.raises(ValidationError, match=r"never floats|valid integer"):
        Sale.model_validate(sale_body(**change))


def test_float_quantities_and_line_amounts_are_rejected():
    lines = sale_body()["lines"]
    for field, value in (("qty_milli", 2000.0), ("unit_price", 2.5), ("total", 500.0)):
        broken = [dict(lines[0], **{field: value}), *lines[1:]]
        with pytest.raises(ValidationError, match="never floats"):
            Sale.model_validate(sale_body(lines=broken))


@pytest.mark.parametrize("value", ["2040", True, None])
def test_money_must_be_a_json_integer(value):
    with pytest.raises(ValidationError):
        Sale.model_validate(sale_body(total=value))


@pytest.mark.parametrize("code", ["eur", "EURO", "EU", "€", ""])
def test_currency_is_three_uppercase_letters(code):
    with pytest.raises(ValidationError, match="currency"):
        Sale.model_validate(sale_body(currency=code))


def test_line_gross_rounds_half_up():
    assert line_gross(299, 1250) == 374  # 373.75
    assert line_gross(1, 500) == 1  # 0.5 rounds up
    assert line_gross(1, 499) == 0
    assert line_gross(250, 2000) == 500


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"total": 2041}, "total 2041"),
        ({"tax_total": 245}, "tax_total"),
        ({"change": 61}, "payments"),
        ({"payments": [{"method": "card", "amount": 2100}]}, "change 60 exceeds the cash"),
        ({"taxes": [{"rate_bp": 700, "base": 850, "tax": 56}]}, "rates"),
        (
            {"taxes": [{"rate_bp": 700, "base": 851, "tax": 56}, {"rate_bp": 1900, "base": 1190, "tax": 190}]},
            "tax base",
        ),
        (
            {
                "taxes": [
                    {"rate_bp": 700, "base": 850, "tax": 56},
                    {"rate_bp": 700, "base": 850, "tax": 56},
                    {"rate_bp": 1900, "base": 1190, "tax": 190},
                ]
            },
            "more than once",
        ),
        ({"lines": []}, "at least 1"),
    ],
)
def test_sale_totals_that_do_not_add_up_are_rejected(changes, message):
    with pytest.raises(ValidationError, match=message):
        Sale.model_validate(sale_body(**changes))


def test_line_total_must_be_gross_less_discount():
    lines = sale_body()["lines"]
    with pytest.raises(ValidationError, match="line total"):
        Sale.model_validate(sale_body(lines=[dict(lines[0], total=499), *lines[1:]]))
    with pytest.raises(ValidationError, match="exceeds the line gross"):
        Sale.model_validate(sale_body(lines=[dict(lines[0], discount=501, total=0), *lines[1:]]))


def test_tax_exclusive_sale_adds_tax_to_the_total():
    body = sale_body(tax_included=False, total=2040 + 246, change=0, payments=[{"method": "card", "amount": 2286}])
    assert Sale.model_validate(body).total == 2286
    with pytest.raises(ValidationError, match="total"):
        Sale.model_validate(dict(body, total=2040))


def test_unknown_fields_are_rejected():
    with pytest.raises(ValidationError, match="extra"):
        Sale.model_validate(sale_body(tip=100))
    lines = sale_body()["lines"]
    with pytest.raises(ValidationError, match="extra"):
        Sale.model_validate(sale_body(lines=[dict(lines[0], colour="red"), *lines[1:]]))


# --- refunds ---------------------------------------------------------------------------


def test_whole_refund_lists_no_lines_and_pays_out_the_amount():
    body = refund_body(scope="whole", lines=[], amount=2040, payments=[{"method": "cash", "amount": 2040}])
    refund = Refund.model_validate(body)
    assert refund.scope is RefundScope.WHOLE and refund.lines == []
    with pytest.raises(ValidationError, match="no lines"):
        Refund.model_validate(dict(body, lines=[{"line_index": 0, "qty_milli": 1000, "amount": 250}]))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"lines": []}, "at least one line"),
        ({"amount": 1000}, "amount 1000"),
        ({"payments": [{"method": "cash", "amount": 1189}]}, "payments 1189"),
        (
            {
                "lines": [{"line_index": 2, "qty_milli": 500, "amount": 595}] * 2,
                "amount": 1190,
                "payments": [{"method": "cash", "amount": 1190}],
            },
            "more than once",
        ),
        ({"original_device_id": "bad/id"}, "original_device_id"),
        ({"reason": ""}, "reason"),
        ({"amount": 1190.0}, "never floats"),
    ],
)
def test_refunds_that_do_not_add_up_are_rejected(changes, message):
    with pytest.raises(ValidationError, match=message):
        Refund.model_validate(refund_body(**changes))


def test_refund_line_model_keeps_index_and_quantity():
    line = RefundLine(line_index=0, qty_milli=500, amount=125)
    assert (line.line_index, line.qty_milli, line.amount) == (0, 500, 125)
    assert Payment(method="other", amount=1).method is PaymentMethod.OTHER


# --- acks and state docs ---------------------------------------------------------------


def test_ack_settles_listed_and_rejected_ids_only():
    acked, rejected, later = uuid7(), uuid7(), uuid7()
    ack = Ack(
        acked_ids=[acked], high_water=10, rejected=[AckRejection(id=rejected, reason="schema", detail="bad body")]
    )
    assert ack.settles(acked)
    assert ack.settles(rejected)
    assert not ack.settles(later), "high_water is information, never a reason to delete"


def test_ack_must_say_something_and_not_contradict_itself():
    with pytest.raises(ValidationError, match="at least one"):
        Ack()
    same = uuid7()
    with pytest.raises(ValidationError, match="both acked and rejected"):
        Ack(acked_ids=[same], rejected=[{"id": same, "reason": "schema", "detail": "x"}])
    with pytest.raises(ValidationError):
        Ack(acked_ids=[uuid.uuid4()])  # message ids are UUIDv7


def test_state_doc_versions_start_at_one_and_docs_stay_json():
    issued = datetime(2025, 1, 1, tzinfo=UTC)
    with pytest.raises(ValidationError):
        StateDoc(domain=StateDomain.CONFIG, version=0, doc={}, issued_at=issued)
    with pytest.raises(ValidationError, match="NaN"):
        StateDoc(domain=StateDomain.CONFIG, version=1, doc={"x": [float("inf")]}, issued_at=issued)
    doc = StateDoc(domain="config", version=7, doc={"a": {"b": [1, None]}}, issued_at=issued)
    assert doc.domain is StateDomain.CONFIG and doc.doc == {"a": {"b": [1, None]}}


def test_command_names_are_dotted_lowercase():
    assert Command(name="licence.release", args={"licence_id": "L1"}).name == "licence.release"
    for bad in ("Licence.Release", "licence..release", "", "a b"):
        with pytest.raises(ValidationError):
            Command(name=bad)


def test_encode_refuses_messages_receivers_would_drop():
    huge = down_message(
        StateDoc(
            domain="cashiers",
            version=1,
            doc={"blob": "x" * (3 * 1024 * 1024)},
            issued_at=datetime(2025, 1, 1, tzinfo=UTC),
        ),
        device_id=DEVICE_ID,
    )
    with pytest.raises(PayloadTooLargeError):
        encode(huge)
