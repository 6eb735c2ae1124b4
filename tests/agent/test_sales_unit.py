"""The permission gate and the sales component built from their typed collaborators, the way
agent/wiring.py builds them, without an agent process: a real store, a roster, a licence
verdict the test sets, and till hardware that records what it was asked to do."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agent.cashiers import sessions
from agent.cashiers.permissions import Action, Gate, PermissionRefused
from agent.cashiers.roster import Roster, parse_roster
from agent.cashiers.sessions import CashierSession
from agent.config import load_config
from agent.hardware.facade import QueuedPrint, RenderedReceipt
from agent.licence.lease import Verdict
from agent.runtime import Runtime
from agent.sales.component import Sales
from agent.sales.models import DrawerOutcome, SalesRefused
from drivers import Receipt
from tests.agent.test_cashiers_support import cashier, roster
from tests.agent.test_sales_support import sale_request
from tests.support.agent_process import write_agent_config
from tests.support.runtime import runtime_for

NOW = 1_780_000_000.0
LICENSED = Verdict(True, "ok", "licence valid")


@dataclass
class RecordingTill:
    """Till hardware (agent/hardware/facade.py TillHardware) that keeps what it was asked."""

    receipt_printer: str | None = "front"
    cash_drawer: str | None = "cash"
    queued: list[tuple[str, str, bytes]] = field(default_factory=list)  # (kind, ref, bytes)
    drawer_openings: list[str | None] = field(default_factory=list)
    drawer_fails: bool = False

    def has_drawer(self, name: str) -> bool:
        return name == self.cash_drawer

    def render_receipt(self, document: Receipt) -> RenderedReceipt | None:
        if self.receipt_printer is None:
            return None
        return RenderedReceipt(self.receipt_printer, repr(document.blocks).encode())

    def queue_rendered(self, conn: sqlite3.Connection, rendered: RenderedReceipt, *, kind: str, ref: str) -> str:
        self.queued.append((kind, ref, rendered.data))
        return f"job-{len(self.queued)}"

    def queue_receipt(
        self, document: Receipt, *, kind: str, ref: str | None = None, printer: str | None = None
    ) -> QueuedPrint:
        self.queued.append((kind, ref or "", b""))
        return QueuedPrint(f"job-{len(self.queued)}", printer or self.receipt_printer or "?")

    def reprint_job(self, job_id: str) -> QueuedPrint | None:
        return None

    async def open_drawer(self, drawer: str | None = None, *, cashier_id: str | None = None) -> str:
        self.drawer_openings.append(drawer)
        if self.drawer_fails:
            raise OSError("drawer cable unplugged")
        return "open"


class Desk:
    """A runtime, a roster, the gate and sales, wired by hand."""

    def __init__(self, directory: Path) -> None:
        self.runtime: Runtime = runtime_for(load_config(write_agent_config(directory, device_id="pos-unit")))
        doc = roster(
            cashier("c-sell", "4001", ["cashier"]),
            cashier("c-admin", "4002", ["admin"]),
        )
        self.roster = Roster.build(1, parse_roster(doc))
        self.now = NOW
        self.verdict = LICENSED
        self.ended: list[tuple[str, str]] = []
        self.gate = Gate(
            self.runtime.store,
            self.runtime.config,
            lambda: self.roster,
            lambda: self.now,
            self.end_session,
            lambda: self.verdict,
        )
        self.till = RecordingTill()
        self.sales = Sales(self.runtime, self.gate, self.till, clock=lambda: self.now)

    def end_session(self, session: CashierSession, reason: str) -> None:
        with self.runtime.store.transaction() as conn:
            sessions.end(conn, session)
        self.ended.append((session.cashier_id, reason))

    def log_in(self, cashier_id: str) -> str:
        with self.runtime.store.transaction() as conn:
            token, _ = sessions.open_session(
                conn, cashier_id=cashier_id, point_of_sale=None, terminal_id=None, operator_code="0000", now=self.now
            )
        return token

    def up(self, type_: str) -> list[dict]:
        rows = self.runtime.store.read().execute("SELECT payload FROM outbox WHERE type = ?", (type_,)).fetchall()
        return [json.loads(row[0])["body"] for row in rows]


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    built = Desk(tmp_path / "agent")
    yield built
    built.runtime.store.close()


# ------------------------------------------------------------------------ the gate


def test_the_gate_grants_a_role_its_actions_with_the_sale_fields(desk: Desk) -> None:
    token = desk.log_in("c-sell")
    grant = desk.gate.authorize(token, Action.SELL)
    assert (grant.action, grant.cashier_id) == (Action.SELL, "c-sell")
    assert grant.sale_fields["cashier_id"] == "c-sell" and grant.sale_fields["till_session_id"]
    with pytest.raises(PermissionRefused) as refused:
        desk.gate.authorize(token, Action.NO_SALE)
    assert refused.value.code == "permission.denied" and "no_sale" in refused.value.message


def test_the_gate_asks_the_licence_for_licensed_actions_only(desk: Desk) -> None:
    seller, admin = desk.log_in("c-sell"), desk.log_in("c-admin")
    desk.verdict = Verdict(False, "licence.expired", "the lease expired: connect to the cloud")
    with pytest.raises(PermissionRefused) as refused:
        desk.gate.authorize(seller, Action.SELL)
    assert (refused.value.code, refused.value.http_status) == ("licence.expired", 403)
    assert desk.gate.authorize(admin, Action.NO_SALE).action is Action.NO_SALE  # no licence needed


def test_the_gate_ends_expired_sessions_and_refuses_unknown_tokens(desk: Desk) -> None:
    token = desk.log_in("c-sell")
    desk.now += desk.runtime.config.cashiers.session_timeout_s + 1
    with pytest.raises(PermissionRefused) as refused:
        desk.gate.authorize(token, Action.SELL)
    assert refused.value.code == "session.expired" and desk.ended == [("c-sell", "session.expired")]
    with pytest.raises(PermissionRefused) as refused:
        desk.gate.authorize("forged", Action.SELL)
    assert (refused.value.code, refused.value.http_status) == ("session.invalid", 401)


def test_the_gate_ends_the_session_of_a_cashier_who_left_the_roster(desk: Desk) -> None:
    token = desk.log_in("c-sell")
    desk.roster = Roster.build(2, parse_roster(roster(cashier("c-admin", "4002", ["admin"]))))
    with pytest.raises(PermissionRefused) as refused:
        desk.gate.current_cashier(token)
    assert refused.value.code == "session.invalid" and desk.ended == [("c-sell", "cashier.removed")]


# ------------------------------------------------------------------------ sales


def test_a_sale_writes_its_message_and_receipt_then_opens_the_drawer(desk: Desk) -> None:
    token = desk.log_in("c-sell")
    result = asyncio.run(desk.sales.commit_sale(token, sale_request("unit-1", pay=[("cash", 1000)])))
    assert result.receipt_no == 1 and result.print_job_id == "job-1" and result.drawer is DrawerOutcome.OPENED
    assert [(kind, ref) for kind, ref, _ in desk.till.queued] == [("sale", result.sale_id)]
    assert desk.till.drawer_openings == [None]  # the cash drawer
    (sale,) = desk.up("up.sale")
    assert sale["sale_id"] == result.sale_id and sale["cashier_id"] == "c-sell"


def test_a_replayed_sale_changes_nothing(desk: Desk) -> None:
    token = desk.log_in("c-sell")
    first = asyncio.run(desk.sales.commit_sale(token, sale_request("unit-2")))
    again = asyncio.run(desk.sales.commit_sale(token, sale_request("unit-2")))
    assert again.replayed and again.sale_id == first.sale_id
    assert len(desk.up("up.sale")) == 1 and len(desk.till.queued) == 1 and len(desk.till.drawer_openings) == 1


def test_a_refused_licence_stops_the_sale_before_anything_is_written(desk: Desk) -> None:
    token = desk.log_in("c-sell")
    desk.verdict = Verdict(False, "licence.none", "no licence on this terminal")
    with pytest.raises(SalesRefused) as refused:
        asyncio.run(desk.sales.commit_sale(token, sale_request("unit-3")))
    assert refused.value.code == "licence.none"
    assert desk.up("up.sale") == [] and desk.till.queued == [] and desk.till.drawer_openings == []


def test_a_drawer_that_fails_after_the_commit_does_not_undo_the_sale(desk: Desk) -> None:
    token = desk.log_in("c-sell")
    desk.till.drawer_fails = True
    result = asyncio.run(desk.sales.commit_sale(token, sale_request("unit-4", pay=[("cash", 1000)])))
    assert result.drawer is DrawerOutcome.FAILED and "unplugged" in (result.drawer_error or "")
    assert len(desk.up("up.sale")) == 1


def test_without_a_receipt_printer_the_sale_stands_and_prints_nothing(desk: Desk) -> None:
    token = desk.log_in("c-sell")
    desk.till.receipt_printer = None
    result = asyncio.run(desk.sales.commit_sale(token, sale_request("unit-5", pay=[("card", 648)])))
    assert result.print_job_id is None and result.drawer is DrawerOutcome.NOT_NEEDED
    assert desk.till.queued == []
    with pytest.raises(SalesRefused) as refused:
        asyncio.run(desk.sales.reprint(token, result.sale_id))
    assert refused.value.code == "print.no_printer"
