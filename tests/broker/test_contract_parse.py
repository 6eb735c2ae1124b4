"""parse_message: one test per rejection reason, and garbage that must never raise."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.contract import (
    MAX_PAYLOAD_BYTES,
    MAX_STATE_DOC_BYTES,
    Parsed,
    Rejection,
    RejectReason,
    encode,
    parse_message,
    payload_limit,
)
from broker.contract.examples import examples

EXAMPLES = {example.name: example.envelope for example in examples()}
SALE = EXAMPLES["up.sale"]
SALE_TOPIC = SALE.topic
SALE_RAW = json.loads(encode(SALE))


def payload(**changes) -> bytes:
    return json.dumps({**SALE_RAW, **changes}).encode()


def rejected(topic: str, data, **kwargs) -> Rejection:
    result = parse_message(topic, data, **kwargs)
    assert isinstance(result, Rejection), result
    assert result.detail
    return result


def test_valid_message_parses_with_its_topic():
    result = parse_message(SALE_TOPIC, encode(SALE))
    assert isinstance(result, Parsed)
    assert result.topic.device_id == SALE.device_id
    assert result.type is SALE.type
    assert result.body.total == 2040


def test_bytearray_and_memoryview_payloads_are_accepted():
    for data in (bytearray(encode(SALE)), memoryview(encode(SALE))):
        assert isinstance(parse_message(SALE_TOPIC, data), Parsed)


def test_too_large_is_checked_before_decoding():
    garbage = b"\xff" * (MAX_PAYLOAD_BYTES + 1)  # not UTF-8 either: size must win
    result = rejected(SALE_TOPIC, garbage)
    assert result.reason is RejectReason.TOO_LARGE
    assert result.device_id == SALE.device_id
    assert rejected(SALE_TOPIC, encode(SALE), max_bytes=100).reason is RejectReason.TOO_LARGE


def test_state_docs_get_a_larger_limit():
    state = EXAMPLES["down.state.config"]
    assert payload_limit(state.type) == MAX_STATE_DOC_BYTES > MAX_PAYLOAD_BYTES
    padded = encode(state)[:-1] + b" " * MAX_PAYLOAD_BYTES + b"}"
    assert isinstance(parse_message(state.topic, padded), Parsed)


@pytest.mark.parametrize("data", [b"\xff\xfe{}", b'{"v":1,"x":"\xc3"}', b"\xed\xa0\x80"])
def test_not_utf8(data):
    assert rejected(SALE_TOPIC, data).reason is RejectReason.NOT_UTF8


def test_non_bytes_payload_is_refused():
    assert rejected(SALE_TOPIC, "{}").reason is RejectReason.NOT_UTF8


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"   ",
        b"{",
        b"{'v': 1}",
        b'{"v":NaN}',
        b'{"v":1} trailing',
        b"[" * 5000,
        b'{"v":1,"s":"\\ud800"}',
        b"\xef\xbb\xbf{}",
    ],
)
def test_not_json(data):
    assert rejected(SALE_TOPIC, data).reason is RejectReason.NOT_JSON


@pytest.mark.parametrize(
    "data",
    [
        b"[]",
        b"42",
        b'"text"',
        b"null",
        payload(v="1"),
        payload(v=True),
        payload(type=7),
        payload(seq=0),
        payload(seq=1.5),
        payload(body={}),
        payload(extra_field=1),
    ],
)
def test_schema(data):
    assert rejected(SALE_TOPIC, data).reason is RejectReason.SCHEMA


def test_schema_rejection_names_the_message_and_the_field():
    result = rejected(SALE_TOPIC, payload(body={**SALE_RAW["body"], "total": 2040.0}))
    assert result.reason is RejectReason.SCHEMA
    assert result.message_id == SALE.id
    assert "total" in result.detail and "never floats" in result.detail


def test_schema_rejection_detail_is_bounded_and_does_not_echo_input():
    huge_name = "Q" * 3_000
    lines = [dict(line, name=huge_name, total=1) for line in SALE_RAW["body"]["lines"]] * 10
    result = rejected(SALE_TOPIC, payload(body={**SALE_RAW["body"], "lines": lines}))
    assert result.reason is RejectReason.SCHEMA
    assert huge_name not in result.detail
    assert len(result.detail) < 2000


def test_unknown_type_in_envelope_and_in_topic():
    assert rejected(SALE_TOPIC, payload(type="up.coupon")).reason is RejectReason.UNKNOWN_TYPE
    topic = SALE_TOPIC.replace("/up/sale", "/up/coupon")
    assert rejected(topic, encode(SALE)).reason is RejectReason.UNKNOWN_TYPE


def test_wrong_device():
    result = rejected(SALE_TOPIC.replace(SALE.device_id, "till-9999"), encode(SALE))
    assert result.reason is RejectReason.WRONG_DEVICE
    assert result.device_id == "till-9999"
    assert result.message_id == SALE.id


def test_bad_topic():
    result = rejected("kassa/v1/dev/till+7/up/sale", encode(SALE))
    assert result.reason is RejectReason.BAD_TOPIC
    assert result.device_id is None


def test_unsupported_version_in_envelope_and_in_topic():
    result = rejected(SALE_TOPIC, payload(v=2))
    assert result.reason is RejectReason.UNSUPPORTED_VERSION
    assert result.message_id == SALE.id
    topic = SALE_TOPIC.replace("/v1/", "/v2/")
    assert rejected(topic, encode(SALE)).reason is RejectReason.UNSUPPORTED_VERSION


def test_type_mismatch_between_topic_and_envelope():
    refund_topic = EXAMPLES["up.refund"].topic
    assert rejected(refund_topic, encode(SALE)).reason is RejectReason.TYPE_MISMATCH
    cashiers = EXAMPLES["down.state.cashiers"]
    config_topic = cashiers.topic.replace("/cashiers", "/config")
    result = rejected(config_topic, encode(cashiers))
    assert result.reason is RejectReason.TYPE_MISMATCH
    assert result.message_id == cashiers.id


def test_a_refused_message_keeps_its_seq_only_from_a_version_1_up_envelope():
    # A cloud counts a refused message's seq as delivered (its device drops the message), so
    # the seq is read only where version 1 defines it, and only when it is a valid one.
    foreign_topic = SALE_TOPIC.replace(SALE.device_id, "till-9999")
    assert rejected(SALE_TOPIC, payload(body={})).seq == SALE.seq  # schema
    assert rejected(foreign_topic, encode(SALE)).seq == SALE.seq  # wrong_device
    assert rejected(SALE_TOPIC, payload(type="up.coupon")).seq == SALE.seq  # unknown_type
    assert rejected(EXAMPLES["up.refund"].topic, encode(SALE)).seq == SALE.seq  # type_mismatch
    for unusable in (
        payload(v=2),
        payload(type="down.ack"),
        payload(type=None),
        payload(seq=0),
        payload(seq=True),
        payload(seq=1.5),
        payload(seq="41"),
        payload(seq=2**63),
    ):
        assert rejected(SALE_TOPIC, unusable).seq is None, unusable[:80]
    assert rejected(SALE_TOPIC, b"\xff garbage").seq is None


def test_every_reason_is_reachable_by_these_tests():
    # Keeps this module honest if a reason is added to the enum without a test above.
    covered = {
        RejectReason.TOO_LARGE,
        RejectReason.NOT_UTF8,
        RejectReason.NOT_JSON,
        RejectReason.SCHEMA,
        RejectReason.UNKNOWN_TYPE,
        RejectReason.WRONG_DEVICE,
        RejectReason.BAD_TOPIC,
        RejectReason.UNSUPPORTED_VERSION,
        RejectReason.TYPE_MISMATCH,
    }
    assert covered == set(RejectReason)


# --- property-based: nothing a peer sends can crash a receive loop ---------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
ENVELOPE_KEYS = [*SALE_RAW, "body.total", "body.lines", "body.payments"]
TOPICS = [envelope.topic for envelope in EXAMPLES.values()]


@given(topic=st.one_of(st.sampled_from(TOPICS), st.text(max_size=80)), data=st.binary(max_size=400))
def test_random_bytes_always_yield_a_rejection(topic, data):
    result = parse_message(topic, data)
    assert isinstance(result, Rejection)
    assert isinstance(result.reason, RejectReason)
    assert isinstance(result.detail, str) and result.detail


@given(topic=st.sampled_from(TOPICS), value=json_values)
def test_random_json_never_raises(topic, value):
    data = json.dumps(value).encode()
    result = parse_message(topic, data)
    assert isinstance(result, Rejection)
    assert isinstance(result.reason, RejectReason)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(EXAMPLES)), key=st.sampled_from(ENVELOPE_KEYS), value=json_values)
def test_mutated_valid_messages_never_raise(name, key, value):
    envelope = EXAMPLES[name]
    raw = json.loads(encode(envelope))
    if key.startswith("body."):
        raw["body"][key.removeprefix("body.")] = value
    else:
        raw[key] = value
    result = parse_message(envelope.topic, json.dumps(raw).encode())
    assert isinstance(result, (Parsed, Rejection))
    if isinstance(result, Rejection):
        assert isinstance(result.reason, RejectReason)
    else:
        assert result.envelope.device_id == envelope.device_id
