"""The typed answer for input that is not a valid kassa message."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["RejectReason", "Rejection"]


class RejectReason(StrEnum):
    """Why a topic or payload was refused. Values are stable and go on the wire (down/ack)."""

    TOO_LARGE = "too_large"
    NOT_UTF8 = "not_utf8"
    NOT_JSON = "not_json"
    SCHEMA = "schema"
    UNKNOWN_TYPE = "unknown_type"
    WRONG_DEVICE = "wrong_device"
    BAD_TOPIC = "bad_topic"
    UNSUPPORTED_VERSION = "unsupported_version"
    # The envelope is well formed but does not belong on the topic it arrived on
    # (a sale on up/refund, a config doc on down/state/cashiers).
    TYPE_MISMATCH = "type_mismatch"


@dataclass(frozen=True, slots=True)
class Rejection:
    """A refused message, with whatever could be learned about it before refusing.

    `device_id` comes from the topic and `message_id` from the payload when they could be read;
    a cloud uses them to report the rejection back to the device in down/ack. `seq` is the
    payload's sequence number when it is a version-1 up envelope holding a valid one: the
    device drops a refused row for good, so the cloud counts that seq as delivered.
    """

    reason: RejectReason
    detail: str
    topic: str = ""
    device_id: str | None = None
    message_id: uuid.UUID | None = None
    seq: int | None = None

    def __str__(self) -> str:
        return f"{self.reason.value}: {self.detail}"
