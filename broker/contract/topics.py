"""Topic names: builders for publishers, a parser for subscribers, and the fixed subscriptions.

    kassa/v1/dev/{device_id}/up/{type}            device -> cloud
    kassa/v1/dev/{device_id}/down/ack             cloud -> device
    kassa/v1/dev/{device_id}/down/state/{domain}  cloud -> device, retained
    kassa/v1/dev/{device_id}/down/cmd             cloud -> device
    kassa/v1/dev/{device_id}/status               device, retained (will: offline)

The device id comes right after the fixed prefix so that one Mosquitto ACL pattern line
(`DEVICE_ACL_LINES`) confine a device, logged in with its id as username, to its own subtree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from .rejection import Rejection, RejectReason

__all__ = [
    "CLOUD_INGEST_SUBSCRIPTION",
    "CLOUD_STATUS_SUBSCRIPTION",
    "DEVICE_ACL_LINES",
    "DEVICE_ID_MAX_LENGTH",
    "MAX_TOPIC_LENGTH",
    "PROTOCOL_VERSION",
    "QOS",
    "RESERVED_DEVICE_ID_PREFIX",
    "TOPIC_PREFIX",
    "InvalidDeviceIdError",
    "MessageType",
    "StateDomain",
    "TopicInfo",
    "ack_topic",
    "check_device_id",
    "cmd_topic",
    "device_subscription",
    "is_reserved_device_id",
    "is_retained",
    "is_valid_device_id",
    "parse_topic",
    "state_topic",
    "status_topic",
    "topic_for",
    "up_topic",
]

PROTOCOL_VERSION = 1
QOS = 1
TOPIC_PREFIX = f"kassa/v{PROTOCOL_VERSION}/dev"
MAX_TOPIC_LENGTH = 256
DEVICE_ID_MAX_LENGTH = 64

# Letters, digits, '.', '_' and '-', starting with a letter or digit: never an MQTT wildcard
# ('+', '#'), a level separator ('/'), NUL, or a leading '$' that brokers reserve.
_DEVICE_ID_RE = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{DEVICE_ID_MAX_LENGTH - 1}}}")
_SEGMENT_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
_VERSION_SEGMENT_RE = re.compile(r"v[0-9]{1,4}")

# What a device may do, as Mosquitto ACL lines (%u = username = device id): publish its up
# messages and status, read what the cloud sends it. broker/production/acl-devices holds the same lines.
DEVICE_ACL_LINES = (
    f"pattern write {TOPIC_PREFIX}/%u/up/#",
    f"pattern write {TOPIC_PREFIX}/%u/status",
    f"pattern read {TOPIC_PREFIX}/%u/down/#",
)
CLOUD_INGEST_SUBSCRIPTION = f"$share/ingest/{TOPIC_PREFIX}/+/up/#"
# Not shared: MQTT 5 brokers do not deliver retained messages to new shared subscriptions,
# and a presence tracker wants the retained status of every device when it starts.
CLOUD_STATUS_SUBSCRIPTION = f"{TOPIC_PREFIX}/+/status"


class MessageType(StrEnum):
    """The envelope `type`; the part after `up.`/`down.` is the topic's last fixed level."""

    SALE = "up.sale"
    REFUND = "up.refund"
    Z_REPORT = "up.z_report"
    LICENCE = "up.licence"
    DEVICE_STATE = "up.state"
    REPLY = "up.reply"
    EVENT = "up.event"
    ACK = "down.ack"
    STATE = "down.state"
    COMMAND = "down.cmd"
    STATUS = "status"

    @property
    def is_up(self) -> bool:
        """Device-to-cloud messages that go through the device outbox and wait for down/ack."""
        return self.value.startswith("up.")

    @property
    def is_down(self) -> bool:
        return self.value.startswith("down.")


class StateDomain(StrEnum):
    """Retained, versioned documents the cloud keeps on each device."""

    CASHIERS = "cashiers"
    CONFIG = "config"
    LICENCE = "licence"


_UP_TYPES = {t.value.removeprefix("up."): t for t in MessageType if t.is_up}
_DOMAINS = {d.value for d in StateDomain}


@dataclass(frozen=True, slots=True)
class TopicInfo:
    """What a valid topic says: whose it is, what it carries and, for down/state, which domain."""

    topic: str
    device_id: str
    message_type: MessageType
    domain: StateDomain | None = None


class InvalidDeviceIdError(ValueError):
    """A device id that could escape its topic subtree or its ACL line."""


# The cloud's MQTT identities all start with this: its account (certificate CN kassa-cloud) and
# its client ids (kassa-ingest-<worker>, kassa-pushes-<worker>). A device id is its CN and, on
# the devices' listener, its client id; Mosquitto's client ids are global across listeners, so
# a device named like a worker would disconnect that worker. No device id may start with it.
RESERVED_DEVICE_ID_PREFIX = "kassa-"


def is_reserved_device_id(device_id: str) -> bool:
    return device_id.lower().startswith(RESERVED_DEVICE_ID_PREFIX)


def is_valid_device_id(device_id: object) -> bool:
    return (
        isinstance(device_id, str)
        and _DEVICE_ID_RE.fullmatch(device_id) is not None
        and not is_reserved_device_id(device_id)
    )


def check_device_id(device_id: str) -> str:
    """Return `device_id` unchanged, or raise `InvalidDeviceIdError`."""
    if not is_valid_device_id(device_id):
        raise InvalidDeviceIdError(
            f"device id {_clip(device_id)} must be 1-{DEVICE_ID_MAX_LENGTH} characters of "
            "A-Z a-z 0-9 . _ - starting with a letter or digit, and not starting with 'kassa-' (reserved for the cloud)"
        )
    return device_id


def up_topic(device_id: str, message_type: MessageType) -> str:
    if not message_type.is_up:
        raise ValueError(f"{message_type} is not an up message type")
    name = message_type.value.removeprefix("up.")
    return f"{TOPIC_PREFIX}/{check_device_id(device_id)}/up/{name}"


def ack_topic(device_id: str) -> str:
    return f"{TOPIC_PREFIX}/{check_device_id(device_id)}/down/ack"


def state_topic(device_id: str, domain: StateDomain) -> str:
    return f"{TOPIC_PREFIX}/{check_device_id(device_id)}/down/state/{StateDomain(domain).value}"


def cmd_topic(device_id: str) -> str:
    return f"{TOPIC_PREFIX}/{check_device_id(device_id)}/down/cmd"


def status_topic(device_id: str) -> str:
    return f"{TOPIC_PREFIX}/{check_device_id(device_id)}/status"


def device_subscription(device_id: str) -> str:
    """The one filter a device subscribes to: everything the cloud sends it."""
    return f"{TOPIC_PREFIX}/{check_device_id(device_id)}/down/#"


def topic_for(message_type: MessageType, device_id: str, domain: StateDomain | None = None) -> str:
    """The topic a message of `message_type` is published on."""
    if message_type is MessageType.STATE:
        if domain is None:
            raise ValueError("down/state topics need a domain")
        return state_topic(device_id, domain)
    if domain is not None:
        raise ValueError(f"{message_type} topics take no domain")
    if message_type.is_up:
        return up_topic(device_id, message_type)
    if message_type is MessageType.ACK:
        return ack_topic(device_id)
    if message_type is MessageType.COMMAND:
        return cmd_topic(device_id)
    return status_topic(device_id)


def is_retained(message_type: MessageType) -> bool:
    """Only the latest state doc per domain and the latest status are kept by the broker."""
    return message_type in (MessageType.STATE, MessageType.STATUS)


def parse_topic(topic: str) -> TopicInfo | Rejection:
    """Classify a topic a message arrived on. Never raises."""
    if not isinstance(topic, str):
        return Rejection(RejectReason.BAD_TOPIC, f"topic must be a str, got {type(topic).__name__}")
    if len(topic) > MAX_TOPIC_LENGTH:
        detail = f"topic longer than {MAX_TOPIC_LENGTH}"
        return Rejection(RejectReason.BAD_TOPIC, detail, topic[:64])
    parts = topic.split("/")
    if len(parts) < 5 or parts[0] != "kassa" or parts[2] != "dev":
        return Rejection(RejectReason.BAD_TOPIC, f"not a kassa device topic: {_clip(topic)}", topic)
    if parts[1] != f"v{PROTOCOL_VERSION}":
        if _VERSION_SEGMENT_RE.fullmatch(parts[1]):
            return Rejection(
                RejectReason.UNSUPPORTED_VERSION,
                f"topic is for protocol {parts[1]}, this side speaks v{PROTOCOL_VERSION}",
                topic,
            )
        return Rejection(RejectReason.BAD_TOPIC, f"bad version level: {_clip(parts[1])}", topic)
    device_id = parts[3]
    if not is_valid_device_id(device_id):
        return Rejection(RejectReason.BAD_TOPIC, f"invalid device id: {_clip(device_id)}", topic)
    return _classify_tail(topic, device_id, parts[4:])


def _classify_tail(topic: str, device_id: str, tail: list[str]) -> TopicInfo | Rejection:
    def unknown(what: str) -> Rejection:
        return Rejection(RejectReason.UNKNOWN_TYPE, what, topic, device_id)

    match tail:
        case ["status"]:
            return TopicInfo(topic, device_id, MessageType.STATUS)
        case ["up", name] if name in _UP_TYPES:
            return TopicInfo(topic, device_id, _UP_TYPES[name])
        case ["up", name] if _SEGMENT_RE.fullmatch(name):
            return unknown(f"unknown up message type {name!r}")
        case ["down", "ack"]:
            return TopicInfo(topic, device_id, MessageType.ACK)
        case ["down", "cmd"]:
            return TopicInfo(topic, device_id, MessageType.COMMAND)
        case ["down", "state", domain] if domain in _DOMAINS:
            return TopicInfo(topic, device_id, MessageType.STATE, StateDomain(domain))
        case ["down", "state", domain] if _SEGMENT_RE.fullmatch(domain):
            return unknown(f"unknown state domain {domain!r}")
        case ["down", name] if name != "state" and _SEGMENT_RE.fullmatch(name):
            return unknown(f"unknown down message type {name!r}")
    return Rejection(RejectReason.BAD_TOPIC, f"unrecognised topic layout: {_clip(topic)}", topic, device_id)


def _clip(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
