"""What the cloud pushes: versioned state documents and commands.

Later modules plug in with ``Inbound.on_state(domain, handler)`` and
``Inbound.on_command(name, handler)``. A state doc is applied only when its
version is newer than the applied one (persisted); a command is applied once
(the inbox table keyed by message id) and its reply is stored, so a redelivered
command is answered again with the very same reply.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from agent.cloud.outbox import Outbox
from agent.store import Store
from broker import contract as kc

log = logging.getLogger(__name__)

# handler(conn, doc): validates and applies a document inside the store transaction
# that also records its version; raise ValueError to refuse the document.
StateHandler = Callable[[sqlite3.Connection, dict[str, Any]], None]
# handler(args) -> result dict; raise CommandError for a failed reply.
CommandHandler = Callable[[dict[str, Any]], dict[str, Any] | None]


class CommandError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Inbound:
    def __init__(self, store: Store, outbox: Outbox, device_id: str) -> None:
        self.store = store
        self.outbox = outbox
        self.device_id = device_id
        self.rejections: Counter[str] = Counter()
        self.state_handlers: dict[str, StateHandler] = {}
        self.command_handlers: dict[str, CommandHandler] = {}
        self.republish: Callable[[kc.Publication], None] = lambda pub: None
        self.state_listeners: list[Callable[[str, int], None]] = []

    def on_state(self, domain: kc.StateDomain | str, handler: StateHandler) -> None:
        self.state_handlers[str(domain)] = handler

    def on_command(self, name: str, handler: CommandHandler) -> None:
        if name in self.command_handlers:
            raise ValueError(f"command {name!r} already has a handler")
        self.command_handlers[name] = handler

    # ----------------------------------------------------------------- dispatch
    def reject(self, rejection: kc.Rejection) -> None:
        self.rejections[rejection.reason.value] += 1
        log.warning(
            "inbound message dropped",
            extra={"reason": rejection.reason.value, "detail": str(rejection), "topic": rejection.topic[:200]},
        )

    def handle_state(self, envelope: kc.Envelope) -> bool:
        """Apply a state doc if newer than the applied version. Returns True when applied."""
        doc = envelope.body
        if not isinstance(doc, kc.StateDoc):
            raise TypeError(f"handle_state needs a state document, not {type(doc).__name__}")
        domain = doc.domain.value
        handler = self.state_handlers.get(domain)
        with self.store.transaction() as conn:
            row = conn.execute("SELECT version FROM applied_state WHERE domain = ?", (domain,)).fetchone()
            applied = row[0] if row else 0
            if doc.version <= applied:
                log.debug(
                    "state doc not newer; ignored", extra={"domain": domain, "version": doc.version, "applied": applied}
                )
                return False
            if handler is not None:
                try:
                    handler(conn, doc.doc)
                except ValueError as exc:
                    # The doc is refused but its version is recorded: redelivery of the same
                    # retained doc must not retry forever; the next version gets a new chance.
                    self.rejections["state_refused"] += 1
                    log.error(
                        "state doc refused by its handler",
                        extra={"domain": domain, "version": doc.version, "problem": str(exc)},
                    )
            conn.execute(
                "INSERT INTO applied_state(domain, version, doc, applied_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(domain) DO UPDATE SET version = excluded.version, doc = excluded.doc, applied_at = "
                "excluded.applied_at",
                (domain, doc.version, json.dumps(doc.doc), time.time()),
            )
        log.info("state doc applied", extra={"domain": domain, "version": doc.version})
        for listener in self.state_listeners:
            listener(domain, doc.version)
        return True

    def handle_command(self, envelope: kc.Envelope) -> None:
        """Apply a command once; answer every delivery with the same stored reply."""
        command = envelope.body
        if not isinstance(command, kc.Command):
            raise TypeError(f"handle_command needs a command, not {type(command).__name__}")
        stored = (
            self.store.read().execute("SELECT reply FROM inbox WHERE message_id = ?", (str(envelope.id),)).fetchone()
        )
        if stored is not None:
            log.info(
                "command redelivered; answering with the stored reply",
                extra={"command": command.name, "id": str(envelope.id)},
            )
            parsed = kc.parse_message(kc.up_topic(self.device_id, kc.MessageType.REPLY), stored[0])
            if isinstance(parsed, kc.Parsed):
                self.republish(kc.publication(parsed.envelope))
            return
        reply = self._run(command)
        with self.store.transaction() as conn:
            reply_row = self.outbox.enqueue(conn, reply, correlation_id=envelope.id)
            conn.execute(
                "INSERT INTO inbox(message_id, name, received_at, reply) VALUES (?, ?, ?, ?)",
                (str(envelope.id), command.name, time.time(), reply_row.payload),
            )
        log.info("command applied", extra={"command": command.name, "ok": reply.ok})

    def _run(self, command: kc.Command) -> kc.Reply:
        if command.expires_at is not None and command.expires_at < datetime.now(UTC):
            return kc.Reply(
                ok=False,
                error=kc.ErrorInfo(
                    code="expired", message=f"command {command.name} expired at {command.expires_at.isoformat()}"
                ),
            )
        handler = self.command_handlers.get(command.name)
        if handler is None:
            return kc.Reply(
                ok=False,
                error=kc.ErrorInfo(code="unknown_command", message=f"this agent has no command {command.name!r}"),
            )
        try:
            return kc.Reply(ok=True, result=handler(dict(command.args)) or {})
        except CommandError as exc:
            return kc.Reply(ok=False, error=kc.ErrorInfo(code=exc.code, message=str(exc)[:500]))
        except Exception as exc:  # a failing handler answers with an error, never kills the loop
            log.exception("command handler failed", extra={"command": command.name})
            return kc.Reply(ok=False, error=kc.ErrorInfo(code="internal", message=f"{type(exc).__name__}: {exc}"[:500]))

    def applied_versions(self) -> dict[str, int]:
        return {row[0]: row[1] for row in self.store.read().execute("SELECT domain, version FROM applied_state")}

    def applied_doc(self, domain: str) -> tuple[int, dict[str, Any]] | None:
        row = self.store.read().execute("SELECT version, doc FROM applied_state WHERE domain = ?", (domain,)).fetchone()
        return None if row is None else (row[0], json.loads(row[1]))
