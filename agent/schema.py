"""Schema versions of the agent store, applied in order at start.

Append new migrations; never edit one that has shipped. Each runs in its own
transaction together with the ``PRAGMA user_version`` bump, so a crash mid-way
leaves the previous version intact.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "meta",
        (
            # Small facts about this installation: which device owns the store,
            # boot counter, first start. Values are text; callers convert.
            """CREATE TABLE meta (
                key   TEXT PRIMARY KEY,
                value TEXT NOT NULL
            ) STRICT""",
        ),
    ),
)
