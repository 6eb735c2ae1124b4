"""What a committed batch tells each device: the down/ack messages to publish, and counters."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

from broker import contract as kc
from broker.contract.messages import MAX_ACK_IDS

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]+")
_DETAIL_MAX = 500


def clean_detail(text: str) -> str:
    """Fit free text into the contract's `detail`: 1-500 characters, no control characters."""
    cleaned = _CONTROL_CHARS.sub(" ", text).strip()[:_DETAIL_MAX].strip()
    return cleaned or "rejected"


@dataclass
class DeviceAck:
    """Everything settled for one device in one batch; ids are unique, in arrival order."""

    acked: dict[uuid.UUID, None] = field(default_factory=dict)
    rejected: dict[uuid.UUID, kc.AckRejection] = field(default_factory=dict)
    high_water: int | None = None

    def envelopes(self, device_id: str) -> list[kc.Envelope]:
        """One down/ack, or several when either list is longer than an ack may carry."""
        acked = list(self.acked)
        rejected = list(self.rejected.values())
        chunks = max(1, -(-len(acked) // MAX_ACK_IDS), -(-len(rejected) // MAX_ACK_IDS))
        envelopes = []
        for i in range(chunks):
            part = slice(i * MAX_ACK_IDS, (i + 1) * MAX_ACK_IDS)
            if not acked[part] and not rejected[part] and self.high_water is None:
                continue
            ack = kc.Ack(acked_ids=acked[part], rejected=rejected[part], high_water=self.high_water)
            envelopes.append(kc.down_message(ack, device_id=device_id))
        return envelopes


@dataclass
class AckPlan:
    """The result of `apply_batch`: publish `envelopes()` only after the transaction commits."""

    devices: dict[str, DeviceAck] = field(default_factory=dict)
    applied: int = 0  # new messages applied
    duplicates: int = 0  # message ids already recorded (or repeated within the batch)
    rejected: int = 0  # refused for good and reported to the device
    invalid: int = 0  # unreadable and not reportable (no message id or device id): logged only
    presence: int = 0  # status messages recorded (several of one device may coalesce)
    ignored: int = 0  # valid messages that are not for the ingest (e.g. down types)

    def device(self, device_id: str) -> DeviceAck:
        return self.devices.setdefault(device_id, DeviceAck())

    def ack(self, device_id: str, message_id: uuid.UUID) -> None:
        entry = self.device(device_id)
        # An id both refused (a malformed copy) and applied (a valid copy) is applied: the
        # contract forbids listing it in both, and the valid copy is what the cloud holds.
        entry.rejected.pop(message_id, None)
        entry.acked[message_id] = None

    def reject(self, device_id: str, message_id: uuid.UUID, reason: str, detail: str) -> None:
        entry = self.device(device_id)
        if message_id in entry.acked:
            return
        entry.rejected[message_id] = kc.AckRejection(id=message_id, reason=reason, detail=clean_detail(detail))

    def envelopes(self) -> list[kc.Envelope]:
        return [envelope for device_id, entry in self.devices.items() for envelope in entry.envelopes(device_id)]
