"""Audit events of cashiers: to the cloud through the outbox, and onto the in-process event bus.

Events are written in the same store transaction as the change they describe (a login
and its session row commit together). They never carry a PIN, a hash or a session token.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from agent.cloud.outbox import Outbox
from agent.events import EventBus
from broker import contract as kc

log = logging.getLogger(__name__)

LOGIN = "cashier.login"
LOGIN_FAILED = "cashier.login_failed"
LOCKED = "cashier.locked"
LOGOUT = "cashier.logout"
FORBIDDEN_KEYS = frozenset({"pin", "pin_hash", "token"})


class Audit:
    def __init__(self, outbox: Outbox, bus: EventBus) -> None:
        # Events are queued even before pairing starts the cloud link, whose drain sends every
        # row of the table once it runs.
        self.outbox = outbox
        self.bus = bus
        self.sent = 0

    def record(self, conn: sqlite3.Connection, kind: str, cashier_id: str | None, **details: Any) -> None:
        """Queue one event inside the caller's transaction."""
        leaked = FORBIDDEN_KEYS & details.keys()
        if leaked:  # a programming error, caught in tests; never send it
            raise ValueError(f"audit details must not carry {', '.join(sorted(leaked))}")
        clean = {k: v for k, v in details.items() if v is not None}
        self.outbox.enqueue(conn, kc.Event(kind=kind, cashier_id=cashier_id, details=clean))
        self.sent += 1

    def publish(self, kind: str, **data: Any) -> None:
        """After the commit: tell in-process subscribers (the POS screen) what happened."""
        self.bus.publish(kind, **{k: v for k, v in data.items() if k not in FORBIDDEN_KEYS})
