"""An up message as the ingest applies it: the envelope's fields, the body, its wire form."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from broker import contract as kc


@dataclass(slots=True)
class Up:
    """A valid up message.

    `body` is the contract's model, or None when the fast path (fastparse.py) checked the
    payload without building models; `wire` is the body as JSON, exactly as the contract
    serialises it (absent rather than null), built on first use when `body` is set.
    """

    id: uuid.UUID
    type: kc.MessageType
    device_id: str
    seq: int
    boot_id: uuid.UUID | None
    created_at: datetime
    clock_trusted: bool
    correlation_id: uuid.UUID | None
    body: Any = None
    wire: dict[str, Any] | None = None
    # The body's JSON text as received, when the fast path proved it is exactly `wire`
    # (unique keys): stored as is instead of serialising `wire` again.
    wire_text: str | None = None

    @classmethod
    def of(cls, envelope: kc.Envelope) -> Up:
        if envelope.seq is None:  # the contract gives every up message a seq
            raise ValueError(f"a {envelope.type} message is not an up message")
        return cls(
            envelope.id,
            envelope.type,
            envelope.device_id,
            envelope.seq,
            envelope.boot_id,
            envelope.created_at,
            envelope.clock_trusted,
            envelope.correlation_id,
            envelope.body,
        )

    def wire_form(self) -> dict[str, Any]:
        if self.wire is None:
            self.wire = self.body.model_dump(mode="json", exclude_none=True)
        return self.wire

    def wire_document(self) -> Any:
        """What to store as the body's JSON document: its text when known, else `wire`."""
        if self.wire_text is not None:
            return JsonText(self.wire_text)
        return self.wire_form()


class JsonText(str):
    """A JSON document already in text form (sql.py stores it without serialising)."""

    __slots__ = ()
