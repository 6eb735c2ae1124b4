"""Batches: several up messages in one MQTT publish, for a device working off a backlog.

    topic    kassa/v1/dev/{device_id}/up/batch
    payload  envelope\\nenvelope\\n...   (JSON Lines: up to 500 up envelopes, at most 256 KiB)

Each line is one complete up envelope, byte for byte what would have been published on its
own topic (compact JSON never holds a raw newline, so the split is exact). A batch has no
envelope and no identity of its own: the messages inside keep their ids and sequence
numbers, are applied one by one exactly as if they had come alone, and are acked (or
rejected) by id in the usual down/ack. Only the transport is shared, so a device may batch
any rows it likes and resend the same rows singly or in other batches.

Why: at thousands of messages per second the per-publish costs (a PUBLISH and a PUBACK each
way, paho's bookkeeping, the broker's routing, the cloud's receive) outweigh the message
itself; a device catching up after an outage sends the same rows in far fewer publishes.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic_core import from_json

from .envelope import MAX_PAYLOAD_BYTES
from .parse import Parsed, _peek_message_id, _peek_seq, parse_message
from .rejection import Rejection, RejectReason
from .topics import TOPIC_PREFIX, MessageType, check_device_id, is_valid_device_id, up_topic

__all__ = [
    "BATCH_TOPIC_LEVEL",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_MESSAGES",
    "batch_device",
    "batch_topic",
    "encode_batch",
    "parse_batch_line",
    "split_batch",
]

BATCH_TOPIC_LEVEL = "batch"
MAX_BATCH_MESSAGES = 500
MAX_BATCH_BYTES = MAX_PAYLOAD_BYTES
_SEPARATOR = b"\n"
_PREFIX = TOPIC_PREFIX + "/"
_SUFFIX = "/up/" + BATCH_TOPIC_LEVEL


def batch_topic(device_id: str) -> str:
    return f"{TOPIC_PREFIX}/{check_device_id(device_id)}{_SUFFIX}"


def batch_device(topic: str) -> str | None:
    """The device id when `topic` is a valid batch topic, else None."""
    if not (isinstance(topic, str) and topic.startswith(_PREFIX) and topic.endswith(_SUFFIX)):
        return None
    device_id = topic[len(_PREFIX) : -len(_SUFFIX)]
    return device_id if is_valid_device_id(device_id) else None


def encode_batch(payloads: Sequence[bytes]) -> bytes:
    """Join encoded up envelopes into one batch payload; ValueError when they cannot be one."""
    if not 2 <= len(payloads) <= MAX_BATCH_MESSAGES:
        raise ValueError(f"a batch holds 2-{MAX_BATCH_MESSAGES} messages, not {len(payloads)}")
    if any(_SEPARATOR in payload for payload in payloads):
        raise ValueError("a batched envelope must be compact JSON without raw newlines")
    joined = _SEPARATOR.join(payloads)
    if len(joined) > MAX_BATCH_BYTES:
        raise ValueError(f"batch is {len(joined)} bytes, limit {MAX_BATCH_BYTES}")
    return joined


def split_batch(topic: str, payload: bytes) -> tuple[str, list[bytes]] | Rejection:
    """(device id, the envelopes' bytes) of a received batch, or why the whole batch is refused.

    The lines are not checked here: each goes through `parse_batch_line` (or a faster parser
    that defers to it), so each message is accepted or rejected on its own.
    """
    device_id = batch_device(topic)
    if device_id is None:
        return Rejection(RejectReason.BAD_TOPIC, "not a kassa batch topic", str(topic)[:256])
    if not isinstance(payload, (bytes, bytearray)):
        return Rejection(
            RejectReason.NOT_UTF8, f"payload must be bytes, not {type(payload).__name__}", topic, device_id
        )
    if len(payload) > MAX_BATCH_BYTES:
        return Rejection(
            RejectReason.TOO_LARGE, f"batch is {len(payload)} bytes, limit {MAX_BATCH_BYTES}", topic, device_id
        )
    lines = bytes(payload).split(_SEPARATOR)
    if lines and not lines[-1]:
        lines.pop()  # a trailing newline is tolerated
    if not 1 <= len(lines) <= MAX_BATCH_MESSAGES:
        return Rejection(
            RejectReason.SCHEMA,
            f"a batch holds 1-{MAX_BATCH_MESSAGES} messages, this one {len(lines)}",
            topic,
            device_id,
        )
    return device_id, lines


def parse_batch_line(device_id: str, line: bytes, index: int) -> Parsed | Rejection:
    """One message of a batch, checked exactly as if it had come on its own up topic."""
    try:
        raw = from_json(line, allow_inf_nan=False)
    except ValueError as error:
        return Rejection(
            RejectReason.NOT_JSON, f"batch line {index + 1}: {str(error)[:200]}", batch_topic(device_id), device_id
        )
    type_name = raw.get("type") if isinstance(raw, dict) else None
    try:
        message_type = MessageType(type_name) if isinstance(type_name, str) else None
    except ValueError:
        message_type = None
    if message_type is None or not message_type.is_up:
        message_id, seq = (_peek_message_id(raw), _peek_seq(raw)) if isinstance(raw, dict) else (None, None)
        return Rejection(
            RejectReason.UNKNOWN_TYPE,
            f"batch line {index + 1}: {str(type_name)[:64]!r} is not an up message type",
            batch_topic(device_id),
            device_id,
            message_id,
            seq,
        )
    return parse_message(up_topic(device_id, message_type), line)
