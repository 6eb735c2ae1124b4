"""The envelope around every message, the builders that fill it in, and the encoder.

On the wire (compact UTF-8 JSON, keys in this order, absent rather than null):

    {"v":1,"id":"<UUIDv7>","type":"up.sale","device_id":"till-7","seq":42,
     "boot_id":"<UUID>","created_at":"2025-03-01T09:30:00.125Z","clock_trusted":true,
     "correlation_id":"<UUID, replies only>","body":{...}}
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import (
    SkipValidation,
    StrictBool,
    StrictInt,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .fields import DeviceId, MessageId, Seq, Timestamp, WireModel, _format_timestamp, _to_utc_millis
from .messages import (
    Ack,
    BindRequest,
    Command,
    DeviceState,
    Event,
    LeaseReport,
    LicenceReport,
    Presence,
    ReleaseReceipt,
    Reply,
    StateDoc,
    Status,
)
from .sales import Refund, Sale, ZReport
from .topics import PROTOCOL_VERSION, QOS, MessageType, check_device_id, is_retained, topic_for
from .uuid7 import uuid7

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "MAX_STATE_DOC_BYTES",
    "Body",
    "Envelope",
    "PayloadTooLargeError",
    "Publication",
    "UpDraft",
    "describe_errors",
    "down_message",
    "draft_up",
    "encode",
    "encode_up",
    "message_type_of",
    "payload_limit",
    "publication",
    "status_message",
    "up_message",
    "will_publication",
]

MAX_PAYLOAD_BYTES = 256 * 1024
# A full cashier roster for a large company is one retained document.
MAX_STATE_DOC_BYTES = 2 * 1024 * 1024

Body = (
    Sale
    | Refund
    | ZReport
    | LeaseReport
    | ReleaseReceipt
    | BindRequest
    | DeviceState
    | Reply
    | Event
    | Ack
    | StateDoc
    | Command
    | Status
)

_BODY_SCHEMA: dict[MessageType, TypeAdapter[Any]] = {
    MessageType.SALE: TypeAdapter(Sale),
    MessageType.REFUND: TypeAdapter(Refund),
    MessageType.Z_REPORT: TypeAdapter(ZReport),
    MessageType.LICENCE: TypeAdapter(LicenceReport),
    MessageType.DEVICE_STATE: TypeAdapter(DeviceState),
    MessageType.REPLY: TypeAdapter(Reply),
    MessageType.EVENT: TypeAdapter(Event),
    MessageType.ACK: TypeAdapter(Ack),
    MessageType.STATE: TypeAdapter(StateDoc),
    MessageType.COMMAND: TypeAdapter(Command),
    MessageType.STATUS: TypeAdapter(Status),
}

_TYPE_OF_BODY: dict[type, MessageType] = {
    Sale: MessageType.SALE,
    Refund: MessageType.REFUND,
    ZReport: MessageType.Z_REPORT,
    LeaseReport: MessageType.LICENCE,
    ReleaseReceipt: MessageType.LICENCE,
    BindRequest: MessageType.LICENCE,
    DeviceState: MessageType.DEVICE_STATE,
    Reply: MessageType.REPLY,
    Event: MessageType.EVENT,
    Ack: MessageType.ACK,
    StateDoc: MessageType.STATE,
    Command: MessageType.COMMAND,
    Status: MessageType.STATUS,
}


def message_type_of(body: Body) -> MessageType:
    """The envelope type a body travels under."""
    try:
        return _TYPE_OF_BODY[type(body)]
    except KeyError:
        raise TypeError(f"{type(body).__name__} is not a kassa message body") from None


def payload_limit(message_type: MessageType) -> int:
    return MAX_STATE_DOC_BYTES if message_type is MessageType.STATE else MAX_PAYLOAD_BYTES


def describe_errors(error: ValidationError, limit: int = 5) -> str:
    """A short, log-friendly summary of a validation error (locations and messages only)."""
    items = error.errors(include_url=False, include_input=False)
    parts = [f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in items[:limit]]
    if len(items) > limit:
        parts.append(f"(+{len(items) - limit} more)")
    return "; ".join(parts)


class Envelope(WireModel):
    """One message of any type. Build with `up_message`, `down_message` or `status_message`."""

    v: StrictInt
    id: MessageId
    type: MessageType
    device_id: DeviceId
    seq: Seq | None = None
    boot_id: uuid.UUID | None = None
    created_at: Timestamp
    clock_trusted: StrictBool
    correlation_id: uuid.UUID | None = None
    # Validated once by _body_matches_type (chosen by `type`); the union would only repeat it.
    body: SkipValidation[Body]

    @field_validator("v")
    @classmethod
    def _known_version(cls, v: int) -> int:
        if v != PROTOCOL_VERSION:
            raise ValueError(f"protocol version {v} is not supported (this side speaks 1)")
        return v

    @field_validator("body", mode="before")
    @classmethod
    def _body_matches_type(cls, body: object, info: ValidationInfo) -> object:
        # The body schema is chosen by the envelope's `type`, never guessed from its shape.
        message_type = info.data.get("type")
        if message_type is None:
            raise PydanticCustomError("body_type", "body cannot be checked without a valid type")
        if not isinstance(body, WireModel):
            try:
                return _BODY_SCHEMA[message_type].validate_python(body)
            except ValidationError as error:
                raise PydanticCustomError("body_invalid", "{errors}", {"errors": describe_errors(error)}) from None
        if _TYPE_OF_BODY.get(type(body)) is not message_type:
            raise PydanticCustomError(
                "body_type",
                "a {body} body cannot travel as {type}",
                {"body": type(body).__name__, "type": message_type.value},
            )
        return body

    @model_validator(mode="after")
    def _direction_rules(self) -> Envelope:
        if self.type.is_up and self.seq is None:
            raise ValueError("up messages carry the device's sequence number `seq`")
        if not self.type.is_up and self.seq is not None:
            raise ValueError("only up messages carry `seq`")
        if not self.type.is_down and self.boot_id is None:
            raise ValueError("device messages carry the `boot_id` of the daemon that made them")
        if self.type is MessageType.REPLY and self.correlation_id is None:
            raise ValueError("a reply carries the command id in `correlation_id`")
        return self

    @property
    def topic(self) -> str:
        domain = self.body.domain if isinstance(self.body, StateDoc) else None
        return topic_for(self.type, self.device_id, domain)


class PayloadTooLargeError(ValueError):
    """The encoded message is larger than a receiver will accept."""


@dataclass(frozen=True, slots=True)
class Publication:
    """Everything `client.publish` needs: kassa publishes every message at QoS 1."""

    topic: str
    payload: bytes
    qos: int
    retain: bool


def _require_direction(body: Body, *, up: bool) -> None:
    message_type = message_type_of(body)
    if (message_type.is_up if up else message_type.is_down) is False:
        direction = "up" if up else "down"
        raise TypeError(f"a {type(body).__name__} body is not a {direction} message")


def _now() -> datetime:
    return datetime.now(UTC)


def up_message(
    body: Body,
    *,
    device_id: str,
    seq: int,
    boot_id: uuid.UUID,
    clock_trusted: bool,
    correlation_id: uuid.UUID | None = None,
    created_at: datetime | None = None,
    message_id: uuid.UUID | None = None,
) -> Envelope:
    """A device-to-cloud message; `seq` is the next value of the device's persisted counter."""
    _require_direction(body, up=True)
    return Envelope(
        v=PROTOCOL_VERSION,
        id=uuid7() if message_id is None else message_id,
        type=message_type_of(body),
        device_id=device_id,
        seq=seq,
        boot_id=boot_id,
        created_at=_now() if created_at is None else created_at,
        clock_trusted=clock_trusted,
        correlation_id=correlation_id,
        body=body,
    )


def down_message(
    body: Body,
    *,
    device_id: str,
    correlation_id: uuid.UUID | None = None,
    created_at: datetime | None = None,
    message_id: uuid.UUID | None = None,
) -> Envelope:
    """A cloud-to-device message (ack, state doc or command); the cloud's clock is trusted."""
    _require_direction(body, up=False)
    return Envelope(
        v=PROTOCOL_VERSION,
        id=uuid7() if message_id is None else message_id,
        type=message_type_of(body),
        device_id=device_id,
        created_at=_now() if created_at is None else created_at,
        clock_trusted=True,
        correlation_id=correlation_id,
        body=body,
    )


def status_message(
    presence: Presence,
    *,
    device_id: str,
    boot_id: uuid.UUID,
    clock_trusted: bool,
    created_at: datetime | None = None,
    message_id: uuid.UUID | None = None,
) -> Envelope:
    return Envelope(
        v=PROTOCOL_VERSION,
        id=uuid7() if message_id is None else message_id,
        type=MessageType.STATUS,
        device_id=device_id,
        boot_id=boot_id,
        created_at=_now() if created_at is None else created_at,
        clock_trusted=clock_trusted,
        body=Status(state=presence),
    )


def encode(envelope: Envelope) -> bytes:
    """Compact UTF-8 JSON. Raises PayloadTooLargeError rather than send what peers refuse."""
    payload = envelope.model_dump_json(exclude_none=True).encode()
    limit = payload_limit(envelope.type)
    if len(payload) > limit:
        raise PayloadTooLargeError(f"{envelope.type} message {envelope.id} is {len(payload)} bytes, limit {limit}")
    return payload


def body_json_of(body: Body) -> bytes:
    """A body as it appears inside an encoded envelope."""
    return body.__pydantic_serializer__.to_json(body, exclude_none=True)


@dataclass(frozen=True, slots=True)
class UpDraft:
    """An up message encoded in full except its sequence number.

    The outbox drafts a message before its transaction opens and fills in the sequence
    number inside it, so the store's write lock covers a byte join, not the encoding.
    """

    message_id: uuid.UUID
    type: MessageType
    head: bytes  # everything up to and including '"seq":'
    tail: bytes  # everything after the number
    limit: int

    def payload(self, seq: int) -> bytes:
        if seq < 1:
            raise ValueError("seq starts at 1")
        payload = b"%s%d%s" % (self.head, seq, self.tail)
        if len(payload) > self.limit:
            raise PayloadTooLargeError(
                f"{self.type} message {self.message_id} is {len(payload)} bytes, limit {self.limit}"
            )
        return payload


def draft_up(
    body: Body,
    *,
    device_id: str,
    boot_id: uuid.UUID,
    clock_trusted: bool,
    correlation_id: uuid.UUID | None = None,
    created_at: datetime | None = None,
    message_id: uuid.UUID | None = None,
    body_json: bytes | None = None,
) -> UpDraft:
    """``encode(up_message(...))`` without building an Envelope, the seq left to fill in.

    The outbox encodes every sale this way, where building and re-serialising a validated
    envelope cost as much as the commit itself. The body is already a validated model and
    the other fields are ours, so only the body is serialised by pydantic; a test holds the
    output byte-identical to the envelope path. Raises PayloadTooLargeError when even the
    smallest seq would not fit.
    """
    _require_direction(body, up=True)
    check_device_id(device_id)
    message_id = message_id or uuid7()
    message_type = message_type_of(body)
    stamp = _format_timestamp(_to_utc_millis(created_at or _now()))
    head = (
        f'{{"v":{PROTOCOL_VERSION},"id":"{message_id}","type":"{message_type.value}","device_id":"{device_id}","seq":'
    ).encode()
    tail = f',"boot_id":"{boot_id}","created_at":"{stamp}","clock_trusted":{"true" if clock_trusted else "false"},'
    if correlation_id is not None:
        tail += f'"correlation_id":"{correlation_id}",'
    draft = UpDraft(
        message_id,
        message_type,
        head,
        tail.encode() + b'"body":' + (body_json if body_json is not None else body_json_of(body)) + b"}",
        payload_limit(message_type),
    )
    if len(draft.head) + 1 + len(draft.tail) > draft.limit:
        raise PayloadTooLargeError(f"{message_type} message {message_id} is over {draft.limit} bytes")
    return draft


def encode_up(
    body: Body,
    *,
    device_id: str,
    seq: int,
    boot_id: uuid.UUID,
    clock_trusted: bool,
    correlation_id: uuid.UUID | None = None,
    created_at: datetime | None = None,
    message_id: uuid.UUID | None = None,
    body_json: bytes | None = None,
) -> tuple[uuid.UUID, bytes]:
    """`draft_up` with the seq filled in: the message id and the payload bytes."""
    if seq < 1:
        raise ValueError("seq starts at 1")
    draft = draft_up(
        body,
        device_id=device_id,
        boot_id=boot_id,
        clock_trusted=clock_trusted,
        correlation_id=correlation_id,
        created_at=created_at,
        message_id=message_id,
        body_json=body_json,
    )
    return draft.message_id, draft.payload(seq)


def publication(envelope: Envelope) -> Publication:
    return Publication(envelope.topic, encode(envelope), QOS, is_retained(envelope.type))


def will_publication(device_id: str, boot_id: uuid.UUID, *, clock_trusted: bool) -> Publication:
    """The retained "offline" status to register as the MQTT will when connecting.

    Its `created_at` is the connect time: the broker publishes it later, unchanged.
    """
    return publication(
        status_message(Presence.OFFLINE, device_id=device_id, boot_id=boot_id, clock_trusted=clock_trusted)
    )
