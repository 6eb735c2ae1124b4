"""Turning (topic, payload) from the broker into a typed message or a typed rejection.

Checks run cheapest first, and each failure has its own reason, so a log line or a down/ack
rejection says exactly what was wrong: topic, size (before any decoding), UTF-8, JSON,
protocol version, type, device id, then the full schema.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from pydantic_core import from_json

from .envelope import Body, Envelope, describe_errors, payload_limit
from .fields import MAX_SEQ
from .messages import StateDoc
from .rejection import Rejection, RejectReason
from .topics import PROTOCOL_VERSION, MessageType, TopicInfo, parse_topic

__all__ = ["Parsed", "parse_message"]


@dataclass(frozen=True, slots=True)
class Parsed:
    """A valid message and the topic it came on."""

    topic: TopicInfo
    envelope: Envelope

    @property
    def type(self) -> MessageType:
        return self.envelope.type

    @property
    def body(self) -> Body:
        return self.envelope.body


def parse_message(topic: str, payload: bytes, *, max_bytes: int | None = None) -> Parsed | Rejection:
    """Validate one received message. Never raises, whatever the topic and payload hold.

    `max_bytes` overrides the default limit for the topic's message type (see payload_limit).
    """
    info = parse_topic(topic)
    if isinstance(info, Rejection):
        return info

    def reject(
        reason: RejectReason,
        detail: str,
        message_id: uuid.UUID | None = None,
        seq: int | None = None,
    ) -> Rejection:
        return Rejection(reason, detail, topic, info.device_id, message_id, seq)

    if not isinstance(payload, (bytes, bytearray, memoryview)):
        return reject(RejectReason.NOT_UTF8, f"payload must be bytes, not {type(payload).__name__}")
    limit = payload_limit(info.message_type) if max_bytes is None else max_bytes
    size = payload.nbytes if isinstance(payload, memoryview) else len(payload)
    if size > limit:
        return reject(RejectReason.TOO_LARGE, f"payload is {size} bytes, limit {limit}")
    try:
        text = bytes(payload).decode("utf-8")
    except UnicodeDecodeError as error:
        return reject(RejectReason.NOT_UTF8, f"invalid UTF-8 at byte {error.start}")
    if not text.strip():
        # An empty retained publish is how a retained message is cleared.
        return reject(RejectReason.NOT_JSON, "empty payload")
    try:
        raw = from_json(text, allow_inf_nan=False)
    except ValueError as error:
        return reject(RejectReason.NOT_JSON, str(error)[:200])
    if not isinstance(raw, dict):
        return reject(RejectReason.SCHEMA, "payload must be a JSON object")

    message_id = _peek_message_id(raw)
    version = raw.get("v")
    if type(version) is not int:
        return reject(RejectReason.SCHEMA, "`v` must be an integer protocol version", message_id)
    if version != PROTOCOL_VERSION:
        return reject(
            RejectReason.UNSUPPORTED_VERSION,
            f"protocol version {version}, this side speaks {PROTOCOL_VERSION}",
            message_id,
        )
    type_name = raw.get("type")
    if not isinstance(type_name, str):
        return reject(RejectReason.SCHEMA, "`type` must be a string", message_id)
    try:
        message_type = MessageType(type_name)
    except ValueError:
        return reject(RejectReason.UNKNOWN_TYPE, f"unknown type {type_name[:64]!r}", message_id, _peek_seq(raw))
    if message_type is not info.message_type:
        return reject(
            RejectReason.TYPE_MISMATCH,
            f"a {message_type} message on a {info.message_type} topic",
            message_id,
            _peek_seq(raw),
        )
    device_id = raw.get("device_id")
    if isinstance(device_id, str) and device_id != info.device_id:
        return reject(
            RejectReason.WRONG_DEVICE,
            f"envelope device {device_id[:64]!r} on the topic of {info.device_id!r}",
            message_id,
            _peek_seq(raw),
        )

    try:
        envelope = Envelope.model_validate(raw)
    except ValidationError as error:
        return reject(RejectReason.SCHEMA, describe_errors(error), message_id, _peek_seq(raw))
    if isinstance(envelope.body, StateDoc) and envelope.body.domain is not info.domain:
        return reject(
            RejectReason.TYPE_MISMATCH,
            f"a {envelope.body.domain} doc on the {info.domain} topic",
            envelope.id,
        )
    return Parsed(info, envelope)


def _peek_seq(raw: dict[str, Any]) -> int | None:
    """The sequence number of a version-1 up envelope, if it holds a valid one.

    Only version 1 defines what `seq` means, and only up messages carry one; anything else
    (another version's envelope, a `down.*` type, a seq out of range or of the wrong JSON
    type) gives None rather than a number that could stand for the wrong message.
    """
    seq = raw.get("seq")
    type_name = raw.get("type")
    if (
        type(raw.get("v")) is int
        and raw["v"] == PROTOCOL_VERSION
        and isinstance(type_name, str)
        and type_name.startswith("up.")
        and type(seq) is int
        and 1 <= seq <= MAX_SEQ
    ):
        return seq
    return None


def _peek_message_id(raw: dict[str, Any]) -> uuid.UUID | None:
    """The message id, if readable, so even a refused message can be named in a down/ack."""
    value = raw.get("id")
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
