"""Sales through the HTTP API only: login, sale, receipt, drawer, cloud ack, refunds, roles,
retries, a SIGKILL after the commit, paper out, licence and lockout refusals."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.posapi.support import ADA, ANNA, BEN, DEVICE, SALE_TOTAL, sale_body, wait_for
from tests.support.terminal import Terminal


def outbox_empty(pos) -> bool:
    return pos.ok("GET", "/v1/status")["cloud"]["outbox_depth"] == 0


def test_sale_prints_kicks_the_drawer_and_reaches_the_cloud(selling: Terminal) -> None:
    pos = selling.pos()
    who = pos.login("anna")
    assert who["cashier_id"] == "anna" and "sell" in who["actions"]
    assert pos.ok("GET", "/v1/cashier/session")["point_of_sale"] == "STORE-1"
    sale = pos.ok("POST", "/v1/sales", sale_body(cash=1500))
    assert sale["total"] == SALE_TOTAL and sale["change"] == 1500 - SALE_TOTAL and sale["replayed"] is False
    assert sale["drawer"] == "opened"
    receipt = selling.printer.wait_for_receipts(1, 15)[0]
    assert (
        "Pencil" in receipt.text and "Coffee" in receipt.text and b"\x1b@" in receipt.raw
    )  # ESC @: the printer was initialised
    assert receipt.png_path is not None and receipt.png_path.exists()
    assert selling.printer.drawer.wait_for_kicks(1, 10)
    selling.cloud.wait_sales(DEVICE, 1, 30)
    wait_for(lambda: outbox_empty(pos), 30, "outbox acked")  # only the cloud's ack empties it
    card = pos.ok("POST", "/v1/sales", sale_body(cash=None, card=SALE_TOTAL))
    assert card["drawer"] == "not_needed"
    selling.printer.wait_for_receipts(2, 15)
    time.sleep(0.5)
    assert len(selling.printer.drawer.kicks) == 1  # no cash, no kick
    assert pos.ok("POST", "/v1/cashier/logout")["ended"] is True
    assert pos.error("POST", "/v1/sales", sale_body()) == (401, "session.invalid")


def test_refund_partial_then_rest_and_over_refund_refused(selling: Terminal) -> None:
    pos = selling.pos()
    pos.login("ben")
    sale = pos.ok("POST", "/v1/sales", sale_body(cash=2000))
    first = pos.ok(
        "POST",
        "/v1/refunds",
        {
            "request_id": "r-1",
            "sale_id": sale["sale_id"],
            "scope": "lines",
            "lines": [{"line_index": 0, "qty_milli": 1000}],
            "reason": "one pencil broken",
        },
    )
    assert first["amount"] == 250 and first["remaining"] == SALE_TOTAL - 250
    over = {
        "request_id": "r-2",
        "sale_id": sale["sale_id"],
        "scope": "lines",
        "lines": [{"line_index": 0, "qty_milli": 2000}],
        "reason": "too many",
    }
    status, code = pos.error("POST", "/v1/refunds", over)
    assert status == 409 and code == "refund.exceeds_sale"
    rest = pos.ok(
        "POST",
        "/v1/refunds",
        {"request_id": "r-3", "sale_id": sale["sale_id"], "scope": "whole", "reason": "returns the rest"},
    )
    assert rest["amount"] == SALE_TOTAL - 250 and rest["remaining"] == 0
    assert pos.error(
        "POST", "/v1/refunds", {**over, "request_id": "r-4", "lines": [{"line_index": 1, "qty_milli": 1000}]}
    ) == (409, "refund.exceeds_sale")
    selling.cloud.wait_applied(DEVICE, 3, 30)


def test_roles_each_way(selling: Terminal) -> None:
    anna, ben, ada = selling.pos(), selling.pos(), selling.pos()
    anna.login("anna")
    ben.login("ben")
    ada.login("ada")
    annas_sale = anna.ok("POST", "/v1/sales", sale_body())
    refund = {
        "request_id": str(uuid.uuid4()),
        "sale_id": annas_sale["sale_id"],
        "scope": "whole",
        "reason": "customer changed mind",
    }
    assert anna.error("POST", "/v1/refunds", refund) == (403, "permission.denied")  # cashier only: no refunds
    assert ben.error("POST", "/v1/refunds", refund) == (403, "permission.denied")  # refund role: own till session only
    assert anna.error("POST", "/v1/drawer/open", {}) == (403, "permission.denied")  # no-sale needs admin or no_sale
    bens_sale = ben.ok("POST", "/v1/sales", sale_body())
    assert (
        ben.ok("POST", "/v1/refunds", {**refund, "request_id": str(uuid.uuid4()), "sale_id": bens_sale["sale_id"]})[
            "remaining"
        ]
        == 0
    )
    assert ada.ok("POST", "/v1/refunds", refund)["remaining"] == 0  # admin: any sale
    assert ada.ok("POST", "/v1/drawer/open", {}) == {
        "drawer": "cash",
        "state": "open",
    }  # the sensor state, as docs/pos-api.md says
    assert ada.ok("POST", f"/v1/sales/{annas_sale['sale_id']}/reprint")["printer"] == "front"
    assert anna.error("POST", "/v1/sales/nope/reprint") == (404, "sale.unknown")
    assert {ANNA["cashier_id"], BEN["cashier_id"], ADA["cashier_id"]} == {"anna", "ben", "ada"}


def test_retry_with_the_same_request_id_sells_once(selling: Terminal) -> None:
    pos = selling.pos()
    pos.login("anna")
    body = sale_body(cash=1300, request_id="till-1-0001")
    first = pos.request("POST", "/v1/sales", body)
    again = pos.request("POST", "/v1/sales", body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["replayed"] is True
    assert {k: v for k, v in again.json().items() if k not in ("replayed", "drawer", "drawer_error")} == {
        k: v for k, v in first.json().items() if k not in ("replayed", "drawer", "drawer_error")
    }
    changed = {**body, "payments": [{"method": "cash", "amount": 5000}]}
    assert pos.error("POST", "/v1/sales", changed) == (409, "sale.request_id_reused")
    selling.cloud.wait_sales(DEVICE, 1, 30)
    wait_for(lambda: outbox_empty(pos), 30, "outbox acked")
    selling.printer.wait_for_receipts(1, 15)
    time.sleep(1.0)
    assert selling.cloud.sales(DEVICE) == 1 and len(selling.printer.receipts) == 1


def test_sigkill_after_commit_prints_once_and_reaches_the_cloud_once(tmp_path, mosquitto) -> None:
    from tests.support.terminal import make_terminal

    for terminal in make_terminal(tmp_path, mosquitto, with_worker=False):
        terminal.ready_to_sell()
        terminal.printer.set_paper("out")  # the job cannot have printed before the kill
        pos = terminal.pos()
        pos.login("anna")
        sale = pos.ok("POST", "/v1/sales", sale_body(card=SALE_TOTAL, cash=None))
        terminal.process.kill()  # SIGKILL: no clean stop
        assert terminal.printer.receipts == [] and terminal.cloud.sales(DEVICE) == 0
        terminal.printer.set_paper("ok")
        terminal.restart()
        terminal.cloud.start_worker("w1")
        receipts = terminal.printer.wait_for_receipts(1, 20)
        terminal.cloud.wait_sales(DEVICE, 1, 30)
        wait_for(lambda terminal=terminal: outbox_empty(terminal.pos()), 30, "outbox acked")
        time.sleep(1.0)
        # Exactly one receipt. It may carry "*** COPY ***": a job the kill caught between "printing"
        # and the printer's paper-out answer counts as interrupted, and the print queue cannot
        # know whether paper came out, so it marks the one it prints (agent/hardware/print_queue.py).
        assert len(terminal.printer.receipts) == 1
        assert terminal.cloud.sales(DEVICE) == 1
        assert str(sale["receipt_no"]) in receipts[0].text


def test_paper_out_the_sale_stands_and_prints_when_paper_returns(selling: Terminal) -> None:
    pos = selling.pos()
    pos.login("anna")
    selling.printer.set_paper("out")
    sale = pos.ok("POST", "/v1/sales", sale_body(cash=None, card=SALE_TOTAL))
    assert sale["print_job_id"]
    wait_for(lambda: pos.ok("GET", "/v1/status")["printers"]["front"]["queued"] == 1, 10, "job waiting for paper")
    time.sleep(0.5)
    assert selling.printer.receipts == []
    selling.printer.set_paper("ok")
    receipt = selling.printer.wait_for_receipts(1, 15)[0]
    assert "Coffee" in receipt.text
    selling.cloud.wait_sales(DEVICE, 1, 30)


def test_no_licence_refuses_the_sale(terminal: Terminal) -> None:
    from tests.agent.test_cashiers_support import roster, roster_envelope
    from tests.posapi.support import CASHIERS

    terminal.peer.send(roster_envelope(1, roster(*CASHIERS), DEVICE))
    wait_for(lambda: terminal.roster_version() == 1, 20, "roster")
    pos = terminal.pos()
    pos.login("anna")
    assert pos.error("POST", "/v1/sales", sale_body()) == (403, "licence.none")
    assert pos.ok("GET", "/v1/status")["licence"]["code"] == "licence.none"


def test_expired_lease_refuses_the_sale(terminal: Terminal) -> None:
    terminal.ready_to_sell(lifetime_s=3600, issued_at=time.time() - 7200)
    pos = terminal.pos()
    pos.login("anna")
    assert pos.error("POST", "/v1/sales", sale_body()) == (403, "licence.expired")


def test_locked_or_disabled_cashier_cannot_sell(selling: Terminal) -> None:
    pos = selling.pos()
    for _attempt in range(2):
        assert pos.error("POST", "/v1/cashier/login", {"code": "anna", "pin": "0000"}) == (401, "cashier.wrong_pin")
    assert pos.error("POST", "/v1/cashier/login", {"code": "anna", "pin": "0000"})[1] == "cashier.locked"
    assert pos.error("POST", "/v1/cashier/login", {"code": "anna", "pin": "4711"}) == (403, "cashier.locked")
    ben = selling.pos()
    ben.login("ben")
    from tests.agent.test_cashiers_support import cashier, roster, roster_envelope

    disabled = cashier(
        "ben", "1002", ["cashier", "refund"], pin="2222", enabled=False, details=[("STORE-1", "T-01", "1002")]
    )
    selling.peer.send(roster_envelope(2, roster(ANNA, disabled, ADA), DEVICE))
    wait_for(lambda: selling.roster_version() == 2, 20, "roster v2")
    assert ben.error("POST", "/v1/sales", sale_body()) == (401, "session.invalid")
    assert ben.error("POST", "/v1/cashier/login", {"code": "ben", "pin": "2222"}) == (403, "cashier.disabled")


@pytest.mark.parametrize("path", ["/v1/reports/x"])
def test_x_report_through_the_api(selling: Terminal, path: str) -> None:
    pos = selling.pos()
    pos.login("anna")
    pos.ok("POST", "/v1/sales", sale_body())
    report = pos.ok("POST", path, {})
    assert report["kind"] == "x" and report["sales_count"] == 1 and report["sales_total"] == SALE_TOTAL
