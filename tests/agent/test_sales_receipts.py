"""Receipts of the sales core, read back from the ESC/POS bytes of their print jobs.

A running agent (real store, print queue, simulated network printer) with a pushed roster, a
real signed lease and the company's receipt template in a pushed ``config`` state document.
The bytes stored in ``print_jobs.data`` are decoded with the preview decoder (the one the
simulated printer uses) into printed lines and QR codes; they are also checked to be exactly
what reached the printer.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.config_edit import set_values
from agent.sales.models import RefundLineIn, RefundRequest
from broker import contract as kc
from drivers.preview.decoder import EscposDecoder
from drivers.preview.model import PrintedLine, PrintedQr
from drivers.sim.printer import VirtualPrinter
from tests.agent.test_sales_support import DEVICE, Till, sale_request, start_till, wait_printed
from tests.support.agent_process import write_agent_config
from tests.support.hardware import hardware_section
from tests.support.licence import trust_section

TEMPLATE = {
    "language": "en",
    "receipt_logo_text": "KASSA CAFE",
    "receipt_header": ["Kassa Cafe GmbH", "Hauptstrasse 1, 10115 Berlin", "VAT DE123456789"],
    "receipt_footer": "Thank you for your visit\nReturns within 30 days",
}


class Printed:
    """What one print job prints: its lines (text) and QR codes, decoded from its bytes."""

    def __init__(self, data: bytes) -> None:
        decoder = EscposDecoder()
        decoder.feed(data)
        page = decoder.take_all()
        self.data = data
        self.lines = [e.text.strip() for e in page.elements if isinstance(e, PrintedLine)]
        self.qr_codes = [e.data for e in page.elements if isinstance(e, PrintedQr)]
        self.bold = {
            e.text.strip() for e in page.elements if isinstance(e, PrintedLine) and any(r.bold for r in e.runs)
        }

    def row(self, left: str, right: str) -> str:
        """The printed line with `left` at its start and `right` at its end (a columns row)."""
        found = [line for line in self.lines if line.startswith(left) and line.endswith(right)]
        assert found, f"no line {left!r} ... {right!r} in:\n" + "\n".join(self.lines)
        return found[0]


def job_bytes(till: Till, job_id: str) -> bytes:
    row = till.agent.agent.store.read().execute("SELECT data FROM print_jobs WHERE job_id = ?", (job_id,)).fetchone()
    assert row is not None, f"no print job {job_id}"
    return row[0]


def printed(till: Till, job_id: str) -> Printed:
    return Printed(job_bytes(till, job_id))


def push_template(till: Till, version: int, doc: dict[str, Any]) -> None:
    body = kc.StateDoc(domain=kc.StateDomain.CONFIG, version=version, doc=doc, issued_at=datetime.now(UTC))
    assert till.agent.call(lambda: till.agent.cloud.inbound.handle_state(kc.down_message(body, device_id=DEVICE)))


@pytest.fixture
def till(tmp_path: Path, printer: VirtualPrinter) -> Iterator[Till]:  # this module's own: a till per test
    running = start_till(tmp_path, printer)
    try:
        running.licence()
        push_template(running, 1, TEMPLATE)
        for who in ("c-sell", "c-refund", "c-admin"):
            running.login(who, "shop-1" if who == "c-sell" else None)
        yield running
    finally:
        running.stop()


def test_sale_receipt_uses_the_pushed_template_and_shows_everything(till: Till, printer: VirtualPrinter) -> None:
    before = len(printer.receipts)
    # Net prices (tax added): 2 x 2.50 at 19 %, 1.5 x 1.99 at 7 % with 0.10 off; paid 5.00 card + 5.00 cash.
    request = sale_request(
        "rcpt-1", lines=[(2000, 250, 1900), (1500, 199, 700)], tax_included=False, pay=[("card", 500), ("cash", 500)]
    )
    request = request.model_copy(
        update={"lines": [request.lines[0], request.lines[1].model_copy(update={"discount": 10})]}
    )
    sale = till.sell("c-sell", request)
    body = sale.sale
    assert body["terminal_id"] == "T-01" and body["operator_code"] == "3101"
    receipt = printed(till, sale.print_job_id)

    # the company's template, from the pushed config document: logo text, header, footer
    assert receipt.lines[0] == "KASSA CAFE" and "KASSA CAFE" in receipt.bold
    assert receipt.lines[1:4] == TEMPLATE["receipt_header"]
    assert receipt.lines[-2:] == ["Thank you for your visit", "Returns within 30 days"]
    assert "Thank you!" not in receipt.lines  # the built-in footer is replaced

    # number, who, where
    assert receipt.row("Receipt", f"#{sale.receipt_no}") in receipt.bold
    receipt.row("Cashier", "c-sell")
    receipt.row("Operator", "3101")
    receipt.row("Terminal", "T-01")
    receipt.row("Device", DEVICE)

    # lines (gross of the line discount), quantity x unit price, the discount
    receipt.row("Item 0", "€5.00")
    receipt.row("Item 1", "€2.99")  # 1.5 x 1.99 = 2.985, rounded half up by the core
    assert body["lines"][1]["total"] + body["lines"][1]["discount"] == 299 and body["lines"][1]["discount"] == 10
    assert "1.5 x €1.99" in receipt.lines
    receipt.row("discount", "-€0.10")
    assert "2 x €2.50" in receipt.lines  # any quantity but one prints its unit price

    # taxes (added on top), total, payments, change
    receipt.row("Net", "€7.89")
    taxes = {t["rate_bp"]: t["tax"] for t in body["taxes"]}
    receipt.row("VAT 19%", f"€0.{taxes[1900]:02d}")
    receipt.row("VAT 7%", f"€0.{taxes[700]:02d}")
    receipt.row("TOTAL", f"€{sale.total // 100}.{sale.total % 100:02d}")
    assert sale.total == 789 + taxes[1900] + taxes[700]
    receipt.row("Card", "€5.00")
    receipt.row("Cash", "€5.00")
    receipt.row("Change", f"€{sale.change // 100}.{sale.change % 100:02d}")
    assert sale.change == 1000 - sale.total > 0
    assert receipt.lines.index(receipt.row("Net", "€7.89")) < receipt.lines.index(
        receipt.row("TOTAL", f"€{sale.total // 100}.{sale.total % 100:02d}")
    )

    # the QR code carries the sale id
    assert receipt.qr_codes == [f"kassa:sale:{sale.sale_id}"]

    # these bytes are what the printer got
    wait_printed(till, sale.print_job_id)
    got = printer.wait_for_receipts(before + 1, 10)[before]
    assert receipt.data in got.raw


def test_tax_included_receipt_lists_the_included_tax(till: Till) -> None:
    sale = till.sell("c-sell", sale_request("rcpt-incl", lines=[(1000, 119, 1900)], pay=[("card", 119)]))
    receipt = printed(till, sale.print_job_id)
    receipt.row("TOTAL", "€1.19")
    receipt.row("incl. VAT 19% of €1.19", "€0.19")  # `base` is the gross line total (docs/protocol.md)
    assert not any(line.startswith(("Net", "Change")) for line in receipt.lines)  # no net line, no change


def test_a_new_template_applies_to_the_next_receipt(till: Till) -> None:
    push_template(till, 2, {"receipt_header": "Kassa Cafe - Airport", "receipt_footer": ["Bon voyage"]})
    sale = till.sell("c-sell", sale_request("rcpt-new-template", pay=[("card", 648)]))
    receipt = printed(till, sale.print_job_id)
    assert receipt.lines[0] == "Kassa Cafe - Airport" and receipt.lines[-1] == "Bon voyage"
    assert "KASSA CAFE" not in receipt.lines and "Kassa Cafe GmbH" not in receipt.lines


def test_refund_receipt_is_marked_and_lists_what_went_back(till: Till) -> None:
    sale = till.sell(
        "c-refund", sale_request("rcpt-r-sale", lines=[(3000, 100, 1900), (1000, 50, 700)], pay=[("cash", 400)])
    )
    refund = till.refund(
        "c-refund",
        RefundRequest(
            request_id="rcpt-r-1",
            sale_id=sale.sale_id,
            scope="lines",
            lines=[RefundLineIn(line_index=0, qty_milli=2000)],
            reason="two were broken",
        ),
    )
    assert refund.print_job_id is not None and refund.print_job_id != sale.print_job_id
    job = till.hardware.queue.get(refund.print_job_id)
    assert job.kind == "refund" and job.ref == refund.refund_id
    receipt = printed(till, refund.print_job_id)
    assert receipt.lines[0] == "KASSA CAFE" and receipt.lines[-1] == "Returns within 30 days"
    assert "REFUND" in receipt.lines and "REFUND" in receipt.bold
    receipt.row("Receipt", f"#{refund.receipt_no}")
    receipt.row("Of sale", f"#{sale.receipt_no}")
    receipt.row("Cashier", "c-refund")
    receipt.row("2 x Item 0", "-€2.00")
    receipt.row("REFUNDED", "€2.00")
    receipt.row("Cash", "€2.00")
    assert "Reason: two were broken" in receipt.lines
    assert receipt.qr_codes == [f"kassa:refund:{refund.refund_id}"]
    assert not any(line.startswith("TOTAL") for line in receipt.lines)
    wait_printed(till, refund.print_job_id)
    # the sale's own receipt says nothing of refunds
    assert "REFUND" not in printed(till, sale.print_job_id).lines


def test_reprints_are_marked_as_copies(till: Till) -> None:
    sale = till.sell("c-sell", sale_request("rcpt-copy", pay=[("card", 648)]))
    wait_printed(till, sale.print_job_id)
    original = printed(till, sale.print_job_id)
    assert "*** COPY ***" not in original.lines
    copy = till.run(till.sales.reprint(till.tokens["c-sell"], sale.sale_id))
    wait_printed(till, copy.job_id)
    again = printed(till, copy.job_id)
    assert again.lines[0] == "*** COPY ***" and "*** COPY ***" in again.bold
    assert again.lines[1:] == original.lines  # the same receipt under the mark, same number and QR
    assert again.qr_codes == [f"kassa:sale:{sale.sale_id}"]
    assert till.hardware.queue.get(copy.job_id).copy_of == sale.print_job_id

    # a sale committed without printing: the copy is rendered from the stored sale
    quiet = till.sell(
        "c-sell", sale_request("rcpt-quiet", pay=[("card", 648)]).model_copy(update={"print_receipt": False})
    )
    assert quiet.print_job_id is None
    late = till.run(till.sales.reprint(till.tokens["c-sell"], quiet.sale_id))
    wait_printed(till, late.job_id)
    rendered = printed(till, late.job_id)
    assert rendered.lines[0] == "*** COPY ***" and rendered.lines[1] == "KASSA CAFE"
    rendered.row("Receipt", f"#{quiet.receipt_no}")
    assert rendered.qr_codes == [f"kassa:sale:{quiet.sale_id}"]

    # a refund's receipt: the copy is marked too and still says REFUND
    own = till.sell("c-refund", sale_request("rcpt-copy-r", pay=[("card", 648)]))
    refund = till.refund(
        "c-refund", RefundRequest(request_id="rcpt-copy-rf", sale_id=own.sale_id, scope="whole", reason="x")
    )
    wait_printed(till, refund.print_job_id)
    refund_copy = printed(till, till.run(till.sales.reprint(till.tokens["c-refund"], refund.refund_id)).job_id)
    assert refund_copy.lines[0] == "*** COPY ***" and "REFUND" in refund_copy.lines
    assert refund_copy.qr_codes == [f"kassa:refund:{refund.refund_id}"]


def test_a_drawer_that_fails_leaves_the_cash_sale_committed(tmp_path: Path, printer: VirtualPrinter) -> None:
    # The cash drawer hangs on a serial port that is not there (unplugged).
    extra = trust_section() + hardware_section(printer.url, drawer_url=f"serial://{tmp_path / 'no-such-tty'}")
    write_agent_config(tmp_path / "agent", device_id=DEVICE, extra=extra)
    till = start_till(tmp_path, printer)
    try:
        till.licence()
        till.login("c-sell", "shop-1")
        events = till.agent.call(lambda: till.agent.agent.events.subscribe({"drawer.failed", "sale.committed"}))
        sale = till.sell("c-sell", sale_request("drawer-broken", pay=[("cash", 1000)]))
        assert sale.drawer.value == "failed" and sale.drawer_error and "no-such-tty" in sale.drawer_error
        failed, committed = till.run(events.next(5)), till.run(events.next(5))
        assert (failed.kind, failed.data["drawer"]) == ("drawer.failed", "cash") and "no-such-tty" in failed.data[
            "error"
        ]
        assert (committed.kind, committed.data["sale_id"], committed.data["drawer"]) == (
            "sale.committed",
            sale.sale_id,
            "failed",
        )
        assert not sale.replayed and sale.change == 1000 - sale.total
        # committed all the same: the sale, its outbox message and its receipt
        assert till.count("SELECT count(*) FROM sales WHERE sale_id = ?", sale.sale_id) == 1
        assert [b["sale_id"] for b in till.outbox("up.sale")] == [sale.sale_id]
        wait_printed(till, sale.print_job_id)
        printed(till, sale.print_job_id).row("Receipt", f"#{sale.receipt_no}")
        # a card sale needs no drawer; the next cash sale tries again and says so again
        card = till.sell("c-sell", sale_request("drawer-card", pay=[("card", 648)]))
        assert card.drawer.value == "not_needed" and card.receipt_no == sale.receipt_no + 1
        again = till.sell("c-sell", sale_request("drawer-broken-2", pay=[("cash", 700)]))
        assert again.drawer.value == "failed"
        # a replay of the failed-drawer sale does not try the drawer again and sells nothing new
        replay = till.sell("c-sell", sale_request("drawer-broken", pay=[("cash", 1000)]))
        assert replay.replayed and replay.sale_id == sale.sale_id and replay.drawer.value == "not_needed"
        assert till.count("SELECT count(*) FROM sales") == 3
    finally:
        till.stop()


def test_the_language_changes_without_a_restart(till: Till) -> None:
    """`kassactl config set site.language de` (and a configuration QR) edit the file and reload it:
    the next receipt is German, with German money and dates; so is a copy rendered from the sale."""
    english = printed(till, till.sell("c-sell", sale_request("lang-en", pay=[("cash", 1000)])).print_job_id)
    english.row("TOTAL", "€6.48")
    english.row("Change", "€3.52")
    set_values(till.config_path, {"site.language": "de"})
    reload = till.agent.call(till.agent.agent.reload_config)
    assert reload["applied"] == ["site.language"] and reload["restart_needed"] == []
    sale = till.sell("c-sell", sale_request("lang-de", pay=[("cash", 1000)]))
    german = printed(till, sale.print_job_id)
    german.row("Beleg", f"Nr. {sale.receipt_no}")
    german.row("SUMME", "6,48 €")
    german.row("Bar", "10,00 €")
    german.row("Rückgeld", "3,52 €")
    german.row("enth. MwSt. 19 % in 2,50 €", "0,40 €")
    assert any(
        line.startswith("Datum")
        and line.endswith(time.strftime("%d.%m.%Y", time.localtime(sale.created_at)) + line[-9:])
        for line in german.lines
    )
    assert (
        german.lines[-2:] == english.lines[-2:] == ["Thank you for your visit", "Returns within 30 days"]
    )  # the company's own footer
    quiet = till.sell(
        "c-sell", sale_request("lang-de-quiet", pay=[("card", 648)]).model_copy(update={"print_receipt": False})
    )
    copy = printed(till, till.run(till.sales.reprint(till.tokens["c-sell"], quiet.sale_id)).job_id)
    assert copy.lines[0] == "*** KOPIE ***" and copy.row("Karte", "6,48 €")


def test_company_labels_replace_the_translation(till: Till) -> None:
    push_template(
        till, 2, {**TEMPLATE, "receipt_labels": {"total": "TO PAY", "tax": "GST", "cash": 5, "unheard_of": "x"}}
    )
    sale = till.sell("c-sell", sale_request("labels", lines=[(1000, 119, 1900)], pay=[("cash", 200)]))
    receipt = printed(till, sale.print_job_id)
    receipt.row("TO PAY", "€1.19")
    receipt.row("incl. GST 19% of €1.19", "€0.19")
    receipt.row("Cash", "€2.00")  # a bad value is ignored: the translation prints
    assert not any(line.startswith("TOTAL") for line in receipt.lines)
