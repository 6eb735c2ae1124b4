"""The sales component on a running agent: real store, print queue into the simulated
printer, cashiers with a pushed roster, a real signed licence lease."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agent import wiring
from agent.hardware.print_queue import PrintQueue
from agent.sales.models import RefundLineIn, RefundRequest, SalesRefused
from drivers.sim.printer import VirtualPrinter
from tests.agent.test_sales_support import Till, sale_request, start_till, wait_printed


def refused(call) -> SalesRefused:
    with pytest.raises(SalesRefused) as info:
        call()
    return info.value


def test_sale_commits_with_outbox_row_and_receipt_and_opens_the_drawer(till: Till, printer: VirtualPrinter) -> None:
    result = till.sell("c-sell", sale_request("flow-1", pay=[("cash", 1000)]))
    assert result.total == 648 and result.change == 352 and not result.replayed
    assert result.drawer.value == "opened"
    sale = next(b for b in till.outbox("up.sale") if b["sale_id"] == result.sale_id)
    assert sale["receipt_no"] == result.receipt_no and sale["point_of_sale_id"] == "shop-1"
    assert sale["terminal_id"] == "T-01" and sale["operator_code"] == "3101" and sale["cashier_id"] == "c-sell"
    wait_printed(till, result.print_job_id)
    job = till.hardware.queue.get(result.print_job_id)
    assert job.kind == "sale" and job.ref == result.sale_id
    assert any(f"#{result.receipt_no}" in r.text for r in printer.receipts)


def test_same_request_id_sells_once_and_a_different_body_is_refused(till: Till) -> None:
    first = till.sell("c-sell", sale_request("flow-idem", pay=[("card", 648)]))
    again = till.sell("c-sell", sale_request("flow-idem", pay=[("card", 648)]))
    assert again.replayed and again.sale_id == first.sale_id and again.receipt_no == first.receipt_no
    assert till.count("SELECT count(*) FROM sales WHERE request_id = 'flow-idem'") == 1
    assert sum(1 for b in till.outbox("up.sale") if b["sale_id"] == first.sale_id) == 1
    other = refused(lambda: till.sell("c-sell", sale_request("flow-idem", pay=[("card", 500), ("cash", 148)])))
    assert other.code == "sale.request_id_reused" and other.http_status == 409


def test_a_failing_print_job_insert_leaves_no_sale_no_outbox_row_and_no_receipt_number(
    till: Till, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = (
        till.count("SELECT count(*) FROM sales"),
        till.count("SELECT count(*) FROM outbox"),
        till.count("SELECT value FROM sales_counters WHERE name = 'receipt_no'"),
    )

    def broken(self, conn, *args, **kwargs):
        conn.execute("INSERT INTO print_jobs(job_id) VALUES (NULL)")  # a real failing insert inside the transaction

    monkeypatch.setattr(PrintQueue, "submit", broken)
    with pytest.raises(Exception):  # noqa: B017 - any error; the assertions below check the rollback
        till.sell("c-sell", sale_request("flow-broken"))
    monkeypatch.undo()
    after = (
        till.count("SELECT count(*) FROM sales"),
        till.count("SELECT count(*) FROM outbox"),
        till.count("SELECT value FROM sales_counters WHERE name = 'receipt_no'"),
    )
    assert after == before
    ok = till.sell("c-sell", sale_request("flow-broken"))  # the same request goes through afterwards
    assert ok.receipt_no == before[2] + 1 and not ok.replayed


def test_refund_partial_then_the_rest_never_more_than_sold(till: Till) -> None:
    sale = till.sell(
        "c-refund", sale_request("flow-r1", lines=[(3000, 100, 1900), (1000, 50, 700)], pay=[("cash", 350)])
    )
    part = till.refund(
        "c-refund",
        RefundRequest(
            request_id="flow-rf1",
            sale_id=sale.sale_id,
            scope="lines",
            lines=[RefundLineIn(line_index=0, qty_milli=1000)],
            reason="broken",
        ),
    )
    assert part.amount == 100 and part.remaining == 250 and part.drawer.value == "opened"
    assert part.receipt_no == sale.receipt_no + 1  # one counter for sales and refunds
    over = refused(
        lambda: till.refund(
            "c-refund",
            RefundRequest(
                request_id="flow-rf2",
                sale_id=sale.sale_id,
                scope="lines",
                lines=[RefundLineIn(line_index=0, qty_milli=2001)],
                reason="x",
            ),
        )
    )
    assert over.code == "refund.exceeds_sale"
    rest = till.refund(
        "c-refund", RefundRequest(request_id="flow-rf3", sale_id=sale.sale_id, scope="whole", reason="all")
    )
    assert rest.amount == 250 and rest.remaining == 0
    assert rest.refund["scope"] == "lines"
    assert [(line["line_index"], line["qty_milli"]) for line in rest.refund["lines"]] == [(0, 2000), (1, 1000)]
    again = refused(
        lambda: till.refund(
            "c-refund", RefundRequest(request_id="flow-rf4", sale_id=sale.sale_id, scope="whole", reason="x")
        )
    )
    assert again.code == "refund.exceeds_sale"
    replay = till.refund(
        "c-refund", RefundRequest(request_id="flow-rf3", sale_id=sale.sale_id, scope="whole", reason="all")
    )
    assert replay.replayed and replay.refund_id == rest.refund_id
    bodies = [b for b in till.outbox("up.refund") if b["original_sale_id"] == sale.sale_id]
    assert [b["amount"] for b in bodies] == [100, 250]


def test_role_rules_for_refunds(till: Till) -> None:
    own = till.sell("c-sell", sale_request("flow-role", pay=[("card", 648)]))
    ask = RefundRequest(request_id="flow-role-r", sale_id=own.sale_id, scope="whole", reason="x")
    assert refused(lambda: till.refund("c-sell", ask)).code == "permission.denied"  # cashier: no refunds
    assert (
        refused(lambda: till.refund("c-refund", ask)).code == "permission.denied"
    )  # refund role: only own till session
    done = till.refund("c-admin", ask)  # admin: any
    assert done.amount == 648 and done.refund["payments"] == [{"method": "card", "amount": 648, "reference": None}]
    assert refused(lambda: till.sell("c-admin", sale_request("flow-admin-sell"))).code == "permission.denied"


def test_paper_out_at_sale_time_the_sale_stands_and_prints_when_paper_returns(
    till: Till, printer: VirtualPrinter
) -> None:
    printer.set_paper("out")
    try:
        result = till.sell("c-sell", sale_request("flow-paper", pay=[("card", 648)]))
        till.agent.wait_until(lambda: till.hardware.queue.last_error["front"] is not None, 10, "refused by the printer")
        time.sleep(0.5)  # a few poll intervals: nothing prints while the paper is out
        assert till.hardware.queue.get(result.print_job_id).state == "queued"
        assert till.count("SELECT count(*) FROM sales WHERE sale_id = ?", result.sale_id) == 1
    finally:
        printer.set_paper("ok")
    wait_printed(till, result.print_job_id)


def test_no_sale_is_audited_and_needs_its_role(till: Till) -> None:
    assert refused(lambda: till.run(till.sales.open_drawer(till.tokens["c-sell"]))).code == "permission.denied"
    result = till.run(till.sales.open_drawer(till.tokens["c-admin"]))
    assert result.drawer == "cash"
    events = [b for b in till.outbox("up.event") if b["kind"] == "drawer.no_sale"]
    assert events and events[-1]["cashier_id"] == "c-admin"


def test_reprint_and_print_document(till: Till, printer: VirtualPrinter) -> None:
    sale = till.sell("c-sell", sale_request("flow-reprint", pay=[("card", 648)]))
    wait_printed(till, sale.print_job_id)
    copy = till.run(till.sales.reprint(till.tokens["c-sell"], sale.sale_id))
    wait_printed(till, copy.job_id)
    assert till.hardware.queue.get(copy.job_id).copy_of == sale.print_job_id
    doc = till.run(
        till.sales.print_document(
            till.tokens["c-sell2"], {"blocks": [{"type": "text", "text": "Table 4"}, {"type": "cut"}]}
        )
    )
    wait_printed(till, doc.job_id)
    bad = refused(
        lambda: till.run(till.sales.print_document(till.tokens["c-sell2"], {"blocks": [{"type": "drawer_kick"}]}))
    )
    assert bad.code == "print.invalid_document"
    assert refused(lambda: till.run(till.sales.print_document("nope", {"blocks": []}))).code == "session.invalid"


def test_x_then_z_numbers_and_reset(till: Till) -> None:
    till.sell("c-sell", sale_request("flow-x1", pay=[("cash", 1000)]))
    x = till.run(till.sales.x_report(till.tokens["c-sell"]))
    assert x.kind == "x" and x.sales_count >= 1 and x.sales_total >= 648
    cash = next(p for p in x.payments if p["method"] == "cash")
    z1 = till.run(till.sales.z_report(till.tokens["c-sell"]))
    assert (z1.z_no, z1.sales_count, z1.sales_total, z1.refunds_total) == (
        1,
        x.sales_count,
        x.sales_total,
        x.refunds_total,
    )
    assert next(p for p in z1.payments if p["method"] == "cash") == cash
    wait_printed(till, z1.print_job_id)
    empty = till.run(till.sales.x_report(till.tokens["c-sell"]))
    assert (empty.sales_count, empty.sales_total, empty.opened_at) == (0, 0, z1.closed_at)
    till.sell("c-sell", sale_request("flow-x2", pay=[("card", 648)]))
    z2 = till.run(till.sales.z_report(till.tokens["c-admin"], print_it=False))
    assert (z2.z_no, z2.sales_count, z2.sales_total) == (2, 1, 648)
    messages = till.outbox("up.z_report")
    assert [m["z_no"] for m in messages][-2:] == [1, 2] and messages[-1]["sales_total"] == 648
    assert (
        refused(lambda: till.run(till.sales.z_report(till.tokens["c-refund"] if False else "bad"))).code
        == "session.invalid"
    )


def test_no_licence_and_locked_cashier(tmp_path: Path, printer: VirtualPrinter) -> None:
    fresh = start_till(tmp_path, printer)
    try:
        fresh.login("c-sell2")
        assert refused(lambda: fresh.sell("c-sell2", sale_request("nolic"))).code == "licence.none"
        from agent.cashiers.login import LoginRefused

        cashiers = fresh.agent.agent.component(wiring.CASHIERS)
        codes = []
        for _ in range(fresh.agent.config.cashiers.lockout_attempts + 1):
            try:
                fresh.run(cashiers.login("c-lock", "9999"))
            except LoginRefused as exc:
                codes.append(exc.code)
        assert codes[-1] == "cashier.locked"
        assert fresh.count("SELECT count(*) FROM sales") == 0
    finally:
        fresh.stop()


def test_replay_after_a_restart(tmp_path: Path, printer: VirtualPrinter) -> None:
    first = start_till(tmp_path, printer)
    first.licence()
    first.login("c-sell2")
    try:
        sold = first.sell("c-sell2", sale_request("restart-1", pay=[("card", 648)]))
    finally:
        first.stop()
    second = start_till(tmp_path, printer)
    try:
        second.licence(version=2)
        second.login("c-sell2")
        again = second.sell("c-sell2", sale_request("restart-1", pay=[("card", 648)]))
        assert again.replayed and again.sale_id == sold.sale_id
        assert second.count("SELECT count(*) FROM sales") == 1
        nxt = second.sell("c-sell2", sale_request("restart-2", pay=[("card", 648)]))
        assert nxt.receipt_no == sold.receipt_no + 1
    finally:
        second.stop()


def test_a_sale_of_another_device_needs_admin_and_the_cloud(till: Till) -> None:
    from broker import contract as kc

    unknown = RefundRequest(request_id="flow-foreign", sale_id=str(kc.uuid7()), scope="whole", reason="x")
    assert refused(lambda: till.refund("c-refund", unknown)).code == "permission.denied"
    cut_off = refused(lambda: till.refund("c-admin", unknown))  # no [cloud] api_url in this config
    assert cut_off.code == "refund.cloud_unreachable" and cut_off.http_status == 503
