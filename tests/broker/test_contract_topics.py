"""Topic builders and the topic parser."""

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.contract import (
    CLOUD_INGEST_SUBSCRIPTION,
    CLOUD_STATUS_SUBSCRIPTION,
    DEVICE_ACL_LINES,
    InvalidDeviceIdError,
    MessageType,
    Rejection,
    RejectReason,
    StateDomain,
    TopicInfo,
    ack_topic,
    check_device_id,
    cmd_topic,
    device_subscription,
    is_retained,
    is_valid_device_id,
    parse_topic,
    state_topic,
    status_topic,
    topic_for,
    up_topic,
)


@pytest.mark.parametrize("message_type", [t for t in MessageType if t.is_up])
def test_every_up_topic_round_trips(message_type):
    topic = up_topic("till-7", message_type)
    assert topic == f"kassa/v1/dev/till-7/up/{message_type.value.removeprefix('up.')}"
    assert parse_topic(topic) == TopicInfo(topic, "till-7", message_type)


@pytest.mark.parametrize("domain", list(StateDomain))
def test_every_state_topic_round_trips(domain):
    topic = state_topic("till-7", domain)
    assert topic == f"kassa/v1/dev/till-7/down/state/{domain.value}"
    assert parse_topic(topic) == TopicInfo(topic, "till-7", MessageType.STATE, domain)


@pytest.mark.parametrize(
    ("topic", "message_type"),
    [
        (ack_topic("A.b_c-9"), MessageType.ACK),
        (cmd_topic("A.b_c-9"), MessageType.COMMAND),
        (status_topic("A.b_c-9"), MessageType.STATUS),
    ],
)
def test_fixed_down_and_status_topics_parse(topic, message_type):
    info = parse_topic(topic)
    assert isinstance(info, TopicInfo)
    assert (info.device_id, info.message_type, info.domain) == ("A.b_c-9", message_type, None)


def test_topic_for_matches_the_specific_builders():
    assert topic_for(MessageType.SALE, "d1") == up_topic("d1", MessageType.SALE)
    assert topic_for(MessageType.ACK, "d1") == "kassa/v1/dev/d1/down/ack"
    assert topic_for(MessageType.COMMAND, "d1") == "kassa/v1/dev/d1/down/cmd"
    assert topic_for(MessageType.STATUS, "d1") == "kassa/v1/dev/d1/status"
    assert topic_for(MessageType.STATE, "d1", StateDomain.CONFIG) == ("kassa/v1/dev/d1/down/state/config")
    with pytest.raises(ValueError):
        topic_for(MessageType.STATE, "d1")
    with pytest.raises(ValueError):
        topic_for(MessageType.ACK, "d1", StateDomain.CONFIG)
    with pytest.raises(ValueError):
        up_topic("d1", MessageType.ACK)


def test_subscriptions_and_acl_line():
    assert device_subscription("till-7") == "kassa/v1/dev/till-7/down/#"
    assert CLOUD_INGEST_SUBSCRIPTION == "$share/ingest/kassa/v1/dev/+/up/#"
    assert CLOUD_STATUS_SUBSCRIPTION == "kassa/v1/dev/+/status"
    assert DEVICE_ACL_LINES == (
        "pattern write kassa/v1/dev/%u/up/#",
        "pattern write kassa/v1/dev/%u/status",
        "pattern read kassa/v1/dev/%u/down/#",
    )
    production = (
        (Path(__file__).resolve().parents[2] / "broker" / "production" / "acl-devices").read_text().splitlines()
    )
    assert all(line in production for line in DEVICE_ACL_LINES), (
        "broker/production/acl-devices grants what the contract says"
    )


def test_only_state_docs_and_status_are_retained():
    assert {t for t in MessageType if is_retained(t)} == {MessageType.STATE, MessageType.STATUS}


@pytest.mark.parametrize(
    "device_id",
    [
        "",
        "a+b",
        "a#",
        "a/b",
        "a\x00b",
        "$SYS",
        "-lead",
        ".lead",
        "x" * 65,
        "dev ice",
        "é",
        7,
        None,
        "kassa-cloud",
        "kassa-ingest-w1",
        "KASSA-pushes-1",
    ],
)
def test_unsafe_device_ids_are_refused_by_builders(device_id):
    assert not is_valid_device_id(device_id)
    with pytest.raises(InvalidDeviceIdError):
        check_device_id(device_id)
    with pytest.raises(InvalidDeviceIdError):
        status_topic(device_id)


def test_longest_allowed_device_id_is_accepted():
    assert check_device_id("x" * 64) == "x" * 64


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("", RejectReason.BAD_TOPIC),
        ("kassa/v1/dev", RejectReason.BAD_TOPIC),
        ("kassa/v1/dev/till-7", RejectReason.BAD_TOPIC),
        ("other/v1/dev/till-7/status", RejectReason.BAD_TOPIC),
        ("kassa/v1/host/till-7/status", RejectReason.BAD_TOPIC),
        ("kassa/vX/dev/till-7/status", RejectReason.BAD_TOPIC),
        ("kassa/v2/dev/till-7/status", RejectReason.UNSUPPORTED_VERSION),
        ("kassa/v1/dev/+/status", RejectReason.BAD_TOPIC),
        ("kassa/v1/dev/till-7/up/sale/extra", RejectReason.BAD_TOPIC),
        ("kassa/v1/dev/till-7/up/", RejectReason.BAD_TOPIC),
        ("kassa/v1/dev/till-7/up/Sale", RejectReason.BAD_TOPIC),
        ("kassa/v1/dev/till-7/up/coupon", RejectReason.UNKNOWN_TYPE),
        ("kassa/v1/dev/till-7/down/state/prices", RejectReason.UNKNOWN_TYPE),
        ("kassa/v1/dev/till-7/down/state", RejectReason.BAD_TOPIC),
        ("kassa/v1/dev/till-7/down/nudge", RejectReason.UNKNOWN_TYPE),
        ("$share/ingest/kassa/v1/dev/till-7/up/sale", RejectReason.BAD_TOPIC),
        ("kassa/v1/dev/till-7/status" + "/x" * 200, RejectReason.BAD_TOPIC),
    ],
)
def test_bad_topics_are_rejected_with_a_reason(topic, reason):
    result = parse_topic(topic)
    assert isinstance(result, Rejection)
    assert result.reason is reason
    assert result.detail


def test_unknown_type_rejection_still_names_the_device():
    result = parse_topic("kassa/v1/dev/till-7/up/coupon")
    assert isinstance(result, Rejection)
    assert result.device_id == "till-7"


@given(st.one_of(st.text(max_size=300), st.binary(max_size=50), st.integers(), st.none()))
def test_parse_topic_never_raises_on_garbage(topic):
    result = parse_topic(topic)
    assert isinstance(result, (TopicInfo, Rejection))
    if isinstance(result, Rejection):
        assert isinstance(result.reason, RejectReason)


@given(
    st.lists(
        st.sampled_from(
            [
                "kassa",
                "v1",
                "v9",
                "dev",
                "till-7",
                "up",
                "down",
                "sale",
                "state",
                "config",
                "ack",
                "cmd",
                "status",
                "+",
                "#",
                "",
                "\x00",
            ]
        ),
        max_size=8,
    )
)
def test_parse_topic_classifies_recombined_levels(levels):
    topic = "/".join(levels)
    result = parse_topic(topic)
    if isinstance(result, TopicInfo):
        assert topic_for(result.message_type, result.device_id, result.domain) == topic
    else:
        assert isinstance(result.reason, RejectReason)
