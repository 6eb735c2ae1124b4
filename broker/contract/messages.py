"""Bodies of every message other than sales and refunds.

Bodies hold only what the envelope does not: the message id, device id, time and correlation
id live in the envelope (see envelope.py), so a command's id is its envelope id and a reply
names it in `correlation_id`.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, StrictBool, StrictInt, model_validator

from .fields import (
    MAX_SEQ,
    Code,
    DottedName,
    JsonObject,
    MessageId,
    PublicKeyText,
    Seq,
    SignedToken,
    Timestamp,
    WireModel,
    text,
)
from .topics import StateDomain

__all__ = [
    "Ack",
    "AckRejection",
    "BindRequest",
    "Command",
    "CommandName",
    "DeviceState",
    "ErrorInfo",
    "Event",
    "HeldLease",
    "LeaseReport",
    "LicenceKind",
    "LicenceReport",
    "Peripheral",
    "PeripheralKind",
    "Presence",
    "ReleaseReceipt",
    "Reply",
    "StateDoc",
    "Status",
    "Tombstone",
]

MAX_ACK_IDS = 1000
Epoch = Annotated[StrictInt, Field(ge=0)]
ShortText = Annotated[str, text(100)]
Message = Annotated[str, text(500)]


# --- up/licence: one topic, several small reports told apart by `kind` --------------------


class LicenceKind(StrEnum):
    LEASE_REPORT = "lease_report"
    RELEASE_RECEIPT = "release_receipt"
    BIND_REQUEST = "bind_request"


class HeldLease(WireModel):
    licence_id: Code
    epoch: Epoch
    lease_expires_at: Timestamp


class Tombstone(WireModel):
    """A lease this device gave up; `receipt` is signed with the device key."""

    licence_id: Code
    epoch: Epoch
    receipt: SignedToken


class LeaseReport(WireModel):
    """Sent on every reconnect: what the device holds and what it has released."""

    kind: Literal[LicenceKind.LEASE_REPORT]
    leases: list[HeldLease] = Field(max_length=100)
    tombstones: list[Tombstone] = Field(max_length=100)


class ReleaseReceipt(WireModel):
    """Proof that the device stopped using a licence, after a licence.release command."""

    kind: Literal[LicenceKind.RELEASE_RECEIPT]
    licence_id: Code
    epoch: Epoch
    receipt: SignedToken


class BindRequest(WireModel):
    """A licence key typed in on the device, with the device's Ed25519 public key."""

    kind: Literal[LicenceKind.BIND_REQUEST]
    licence_key: Code
    device_public_key: PublicKeyText


LicenceReport = Annotated[LeaseReport | ReleaseReceipt | BindRequest, Field(discriminator="kind")]


# --- up/state ------------------------------------------------------------------------------


class PeripheralKind(StrEnum):
    PRINTER = "printer"
    SCANNER = "scanner"
    DRAWER = "drawer"
    OTHER = "other"


class Peripheral(WireModel):
    kind: PeripheralKind
    model: ShortText
    status: DottedName  # the driver's normalised status, e.g. "ok", "paper_out"


class DeviceState(WireModel):
    software_version: ShortText
    applied_versions: dict[StateDomain, Epoch]
    outbox_depth: StrictInt = Field(ge=0)
    oldest_unacked_seq: Seq | None = None
    hardware: list[Peripheral] = Field(default_factory=list, max_length=32)


# --- up/reply and up/event -----------------------------------------------------------------


class ErrorInfo(WireModel):
    code: DottedName  # e.g. "unknown_command", "expired", "licence.not_held"
    message: Message


class Reply(WireModel):
    """The answer to one down/cmd; the envelope's correlation_id is the command's id."""

    ok: StrictBool
    result: JsonObject | None = None
    error: ErrorInfo | None = None

    @model_validator(mode="after")
    def _ok_xor_error(self) -> Reply:
        if self.ok and self.error is not None:
            raise ValueError("a successful reply carries no error")
        if not self.ok and (self.error is None or self.result is not None):
            raise ValueError("a failed reply carries an error and no result")
        return self


class Event(WireModel):
    """An audit event: cashier login, lockout, drawer opened without a sale, ..."""

    kind: DottedName
    cashier_id: Code | None = None
    details: JsonObject = Field(default_factory=dict)


# --- down/ack ------------------------------------------------------------------------------


class AckRejection(WireModel):
    """A message the cloud will never apply; the device drops it and shows why."""

    id: MessageId
    reason: DottedName  # a RejectReason value, or a business reason such as "sale.duplicate"
    detail: Message


class Ack(WireModel):
    """What the cloud has durably applied (or refused for good) for one device.

    `high_water`: every up message with seq <= high_water is settled, so a device may also
    delete those outbox rows without listing their ids.
    """

    acked_ids: list[MessageId] = Field(default_factory=list, max_length=MAX_ACK_IDS)
    high_water: Seq | None = None
    rejected: list[AckRejection] = Field(default_factory=list, max_length=MAX_ACK_IDS)

    @model_validator(mode="after")
    def _says_something_consistent(self) -> Ack:
        if not self.acked_ids and self.high_water is None and not self.rejected:
            raise ValueError("an ack acknowledges or rejects at least one message")
        both = set(self.acked_ids) & {r.id for r in self.rejected}
        if both:
            raise ValueError(f"ids both acked and rejected: {sorted(map(str, both))[:3]}")
        return self

    def settles(self, message_id: uuid.UUID) -> bool:
        """True when the outbox row with this id may be deleted (acked or refused for good).

        `high_water` is information only: a device whose store was replaced restarts at seq 1,
        and deleting by seq would drop messages the cloud never saw.
        """
        return message_id in self.acked_ids or any(r.id == message_id for r in self.rejected)


# --- down/state/{domain} and down/cmd ------------------------------------------------------


class StateDoc(WireModel):
    """A full document for one domain; a device ignores versions <= the one it applied."""

    domain: StateDomain
    version: StrictInt = Field(ge=1, le=MAX_SEQ)  # a device stores it as a SQLite INTEGER
    doc: JsonObject
    issued_at: Timestamp


class CommandName(StrEnum):
    """Commands this version of the contract defines; other names get an error reply."""

    LICENCE_RELEASE = "licence.release"
    CASHIERS_LOAD = "cashiers.load"
    CONFIG_RELOAD = "config.reload"
    PING = "ping"


class Command(WireModel):
    name: DottedName
    args: JsonObject = Field(default_factory=dict)
    expires_at: Timestamp | None = None


# --- status --------------------------------------------------------------------------------


class Presence(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class Status(WireModel):
    state: Presence
