"""The cached roster: who may log in on this terminal, indexed for login.

The cloud pushes the `cashiers` state document (``broker.contract.roster.RosterDoc``).
The last document this agent accepted is kept in ``cashier_roster`` so logins work
after a restart and through days offline; ``applied_state`` alone is not enough,
because it also records versions the handler refused.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from broker.contract.roster import RosterCashier, RosterDoc


@dataclass(frozen=True)
class Roster:
    """One accepted roster version, indexed by cashier id and by operator code."""

    version: int = 0
    doc: RosterDoc = field(default_factory=RosterDoc)
    by_id: dict[str, RosterCashier] = field(default_factory=dict)
    by_operator_code: dict[str, RosterCashier] = field(default_factory=dict)

    @classmethod
    def build(cls, version: int, doc: RosterDoc) -> Roster:
        return cls(
            version=version,
            doc=doc,
            by_id={c.cashier_id: c for c in doc.cashiers},
            by_operator_code={c.operator_code: c for c in doc.cashiers},
        )

    @property
    def loaded(self) -> bool:
        return self.version > 0

    def find(self, code: str) -> RosterCashier | None:
        """The cashier whose cashier id, else whose operator code, is ``code``.

        Cashier ids are looked up first: an id that happens to be four digits must not
        log in whoever holds that number as an operator code.
        """
        return self.by_id.get(code) or self.by_operator_code.get(code)

    def allows(self, cashier_id: str) -> str | None:
        """None when the cashier may work here, else why not (``cashier.removed`` / ``cashier.disabled``)."""
        cashier = self.by_id.get(cashier_id)
        if cashier is None:
            return "cashier.removed"
        if not cashier.enabled:
            return "cashier.disabled"
        return None

    def public(self) -> list[dict[str, Any]]:
        """The roster for listings: everything but the PIN hashes."""
        return [
            {
                "cashier_id": c.cashier_id,
                "name": c.name,
                "operator_code": c.operator_code,
                "roles": [r.value for r in c.roles],
                "enabled": c.enabled,
                "has_pin": c.pin_hash is not None,
                "details": [d.model_dump() for d in c.details],
            }
            for c in self.doc.cashiers
        ]


def parse_roster(doc: dict[str, Any]) -> RosterDoc:
    """Validate a pushed document; ValueError (which inbound logs) names the problem."""
    try:
        return RosterDoc.model_validate(doc)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'doc'}: {e['msg']}" for e in exc.errors()[:5])
        raise ValueError(f"cashiers roster refused ({exc.error_count()} problem(s)): {problems}") from None


def save_accepted(conn: sqlite3.Connection, version: int, doc: RosterDoc) -> None:
    conn.execute(
        "INSERT INTO cashier_roster(id, version, doc, accepted_at) VALUES (1, ?, ?, ?) "
        "ON CONFLICT(id) DO UPDATE SET version = excluded.version, doc = excluded.doc, accepted_at = "
        "excluded.accepted_at",
        (version, doc.model_dump_json(), time.time()),
    )


def load_accepted(conn: sqlite3.Connection) -> Roster:
    row = conn.execute("SELECT version, doc FROM cashier_roster WHERE id = 1").fetchone()
    if row is None:
        return Roster()
    return Roster.build(row[0], RosterDoc.model_validate(json.loads(row[1])))


def applied_roster_doc(conn: sqlite3.Connection) -> tuple[int, dict[str, Any]] | None:
    """The newest `cashiers` document inbound recorded (accepted or not)."""
    row = conn.execute("SELECT version, doc FROM applied_state WHERE domain = 'cashiers'").fetchone()
    return None if row is None else (row[0], json.loads(row[1]))
