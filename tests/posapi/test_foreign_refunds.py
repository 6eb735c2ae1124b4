"""An admin refunds, through the POS API, a sale made on another terminal of the company.

Everything is real: device A's sale (and a refund A made of it) reaches the cloud through the
ingest (`apply_batch`, as a worker applies them); terminal B is a real agent process, paired
the way production terminals are (a client certificate for a TLS listener of a real
Mosquitto, so its cloud link runs next to `[cloud] api_url`), registered in the cloud with its
identity key; the cloud API is a real uvicorn over the same SQLite database that a real ingest
worker writes B's refunds into; receipts go to the simulated printer.
"""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from broker import contract as kc
from broker.contract.signing import public_key_text
from broker.launcher import Mosquitto, free_port
from cloud_api.ingest.apply import apply_batch
from cloud_api.reports.models import RefundRecord
from cloud_api.settings import CloudSettings
from cloud_api.tenancy.models import Device
from drivers.sim.printer import VirtualPrinter
from tests.deploy.tls_broker import make_certs
from tests.posapi.support import DEVICE, create_pos_token, terminal_config, wait_for
from tests.support.agent_process import AgentProcess
from tests.support.cloud import Cloud
from tests.support.cloud_http import LiveApi, live_api
from tests.support.licence import identity_public_key
from tests.support.mqtt_peer import MqttPeer
from tests.support.sales import make_sale
from tests.support.terminal import Terminal

TILL_A = "till-a"  # the other terminal of the company, which made the sale
T0 = datetime.now(UTC) - timedelta(hours=1)


@dataclass
class Company:
    terminal: Terminal  # terminal B, the admin's
    api: LiveApi
    company_id: int
    admin_token: str  # a company_admin of the cloud API
    sale: kc.Sale  # made on till-a, 2040 EUR: line 0 2 x 250, line 1 350, line 2 1190
    stop_api: Any

    def ingest(self, device_id: str, *bodies: Any, first_seq: int = 1) -> None:
        """Apply messages of `device_id` as the cloud's ingest does for a received batch."""
        envelopes = [
            kc.up_message(
                body,
                device_id=device_id,
                seq=first_seq + i,
                boot_id=uuid.uuid4(),
                clock_trusted=True,
                created_at=T0 + timedelta(minutes=i),
            )
            for i, body in enumerate(bodies)
        ]
        with Session(self.api.engine) as session, session.begin():
            parsed = [kc.parse_message(kc.publication(e).topic, kc.publication(e).payload) for e in envelopes]
            assert apply_batch(session, parsed).applied == len(bodies)

    def cloud_sale(self) -> dict[str, Any]:
        return self.api.call(
            "GET", f"/companies/{self.company_id}/sales/{self.sale.sale_id}", self.admin_token, 200
        ).json()

    def cloud_list_entry(self) -> dict[str, Any]:
        items = self.api.call(
            "GET", f"/companies/{self.company_id}/sales?device={TILL_A}", self.admin_token, 200
        ).json()["items"]
        return next(item for item in items if item["sale_id"] == str(self.sale.sale_id))


def tls_broker(workdir: Path, pki: Path) -> tuple[Mosquitto, int]:
    """A Mosquitto with the plain test listener (cloud side: worker, pushes) and a mutual-TLS
    listener where terminals log in with their certificate, as in production."""
    for _attempt in range(3):  # another test process can take the TLS port before Mosquitto binds it
        tls_port = free_port()
        extra = "\n".join(
            [
                f"listener {tls_port} 127.0.0.1",
                f"cafile {pki / 'device-ca.crt'}",
                f"certfile {pki / 'server.crt'}",
                f"keyfile {pki / 'server.key'}",
                "require_certificate true",
                "use_identity_as_username true",
            ]
        )
        broker = Mosquitto(workdir, extra_config=extra).start()
        if broker.wait_listening(tls_port):
            return broker, tls_port
        broker.kill()
    raise AssertionError(f"the TLS listener did not start; see {broker.log_path}:\n{broker.log_tail()}")


def paired_terminal_config(
    directory: Path, broker: Mosquitto, tls_port: int, pki: Path, printer: VirtualPrinter, api_url: str
) -> Path:
    extra = f'[cloud]\napi_url = "{api_url}"\ntimeout_s = 3\n'
    path = terminal_config(
        directory,
        broker,
        printer,
        extra=extra,
        port=tls_port,
        ca_file=str(pki / "cloud-ca.crt"),
        cert_file=str(pki / "clients" / f"{DEVICE}.crt"),
        key_file=str(pki / "clients" / f"{DEVICE}.key"),
        ack_timeout_s=3.0,
    )
    text = path.read_text()
    assert text.count("[mqtt]\n") == 1
    path.write_text(text.replace("[mqtt]\n", "[mqtt]\ntls = true\n"))
    return path


@pytest.fixture
def company(tmp_path: Path) -> Iterator[Company]:
    pki = tmp_path / "pki"
    made = make_certs(pki, DEVICE)
    assert made.returncode == 0, made.stderr
    with contextlib.ExitStack() as stack:
        broker, tls_port = tls_broker(tmp_path / "mosquitto", pki)
        stack.callback(broker.kill)
        cloud = Cloud(tmp_path / "cloud", broker)
        stack.callback(cloud.stop)
        cloud.start_worker("w1")
        api_stack = stack.enter_context(contextlib.ExitStack())
        api = api_stack.enter_context(live_api(CloudSettings(database_url=cloud.database_url), cloud.engine))
        printer = VirtualPrinter(preview_dir=tmp_path / "previews").start()
        stack.callback(printer.stop)
        peer = MqttPeer(broker, "test-cloud-pushes")
        stack.callback(peer.close)
        config = paired_terminal_config(tmp_path / "agent", broker, tls_port, pki, printer, api.url)
        terminal = Terminal(tmp_path, broker, printer, peer, cloud, config, AgentProcess(config))
        stack.callback(lambda: terminal.process.kill())
        stack.callback(lambda: [client.close() for client in terminal.clients])
        terminal.start()  # waits for the cloud link: B's certificate was accepted by the TLS listener
        assert terminal.process.client().call("status")["components"]["pairing"]["state"] == "paired"
        terminal.pos_token = create_pos_token(terminal.socket)
        terminal.ready_to_sell()

        cid, admin, _pos = api.company_with_admin("Two Tills Co", "POS-MAIN")
        other_cid, _other_admin, _ = api.company_with_admin("Other Co", "POS-OTHER")
        with Session(api.engine) as session:
            session.add(Device(device_id=TILL_A, company_id=cid, created_at=T0))
            session.add(
                Device(
                    device_id=DEVICE,
                    company_id=cid,
                    created_at=T0,
                    public_key=public_key_text(identity_public_key(terminal.state_dir)),
                )
            )
            session.add(Device(device_id="till-other", company_id=other_cid, created_at=T0))
            session.commit()
        found = Company(terminal, api, cid, admin, make_sale(5), api_stack.close)
        yield found


def refund_body(
    sale_id: Any, *, scope: str = "lines", lines: list[tuple[int, int]] = (), reason: str = "returned"
) -> dict[str, Any]:
    body: dict[str, Any] = {"request_id": str(uuid.uuid4()), "sale_id": str(sale_id), "scope": scope, "reason": reason}
    if scope == "lines":
        body["lines"] = [{"line_index": i, "qty_milli": q} for i, q in lines]
    return body


def test_admin_refunds_a_sale_of_another_terminal_and_it_reaches_the_cloud(company: Company) -> None:
    sale = company.sale
    # till-a sold and already refunded one of the two espressos itself; the cloud has both.
    by_a = kc.Refund(
        refund_id=kc.uuid7(),
        original_sale_id=sale.sale_id,
        original_device_id=TILL_A,
        scope=kc.RefundScope.LINES,
        lines=[kc.RefundLine(line_index=0, qty_milli=1000, amount=250)],
        currency="EUR",
        amount=250,
        payments=[kc.Payment(method="cash", amount=250)],
        cashier_id="C-0107",
        till_session_id=sale.till_session_id,
        reason="cold coffee",
        receipt_no=6,
    )
    company.ingest(TILL_A, sale, by_a)
    pos = company.terminal.pos()
    pos.login("ada")

    # Both espressos: one is gone already (refunded on till-a): refused, counting the cloud's refund.
    status, code = pos.error("POST", "/v1/refunds", refund_body(sale.sale_id, lines=[(0, 2000)]))
    assert (status, code) == (409, "refund.exceeds_sale")

    first = pos.ok("POST", "/v1/refunds", refund_body(sale.sale_id, lines=[(0, 1000)], reason="second coffee cold"))
    assert first["amount"] == 250 and first["sale_id"] == str(sale.sale_id)
    assert first["remaining"] == 2040 - 250 - 250  # till-a's refund counts too
    assert first["refund"]["original_device_id"] == TILL_A and first["refund"]["cashier_id"] == "ada"
    assert first["refund"]["payments"] == [{"method": "cash", "amount": 250, "reference": None}]
    receipt = company.terminal.printer.wait_for_receipts(1, 15)[0]
    assert (
        "REFUND" in receipt.text and "Of sale" in receipt.text and "#5" in receipt.text and "Espresso" in receipt.text
    )

    # A second partial refund of the same line: nothing of it is left (one refunded on A, one here).
    status, code = pos.error("POST", "/v1/refunds", refund_body(sale.sale_id, lines=[(0, 1000)]))
    assert (status, code) == (409, "refund.exceeds_sale")
    # Another refund made on till-a meanwhile (the apples) reaches the cloud: B must count it too.
    apples = by_a.model_copy(
        update={
            "refund_id": kc.uuid7(),
            "lines": [kc.RefundLine(line_index=1, qty_milli=1250, amount=350)],
            "amount": 350,
            "payments": [kc.Payment(method="cash", amount=350)],
            "receipt_no": 7,
        }
    )
    company.ingest(TILL_A, apples, first_seq=3)
    status, code = pos.error("POST", "/v1/refunds", refund_body(sale.sale_id, lines=[(1, 1000)]))
    assert (status, code) == (409, "refund.exceeds_sale")
    # B's first refund reaches the cloud too: the lookup lists it, and B must not count it twice.
    wait_for(lambda: pos.ok("GET", "/v1/status")["cloud"]["outbox_depth"] == 0, 30, "B's first refund acked")
    wait_for(lambda: company.cloud_list_entry()["refund_count"] == 3, 30, "B's first refund listed against the sale")

    # Cash: the sale took 1,100 with 60 change (1,040 net) and 1,000 by card; 250 + 250 + 350 went
    # back in cash already (two on till-a, one here): 190 cash is left, whatever the request says.
    cash_taken = sum(p.amount for p in sale.payments if p.method is kc.PaymentMethod.CASH) - sale.change
    assert cash_taken == 1040
    for payments in (
        [{"method": "cash", "amount": 1190}],
        [{"method": "cash", "amount": 191}, {"method": "card", "amount": 999}],
    ):
        explicit = {**refund_body(sale.sale_id, scope="whole"), "payments": payments}
        assert pos.error("POST", "/v1/refunds", explicit) == (422, "refund.invalid_payments")
    rest = pos.ok("POST", "/v1/refunds", refund_body(sale.sale_id, scope="whole", reason="returns the rest"))
    assert rest["amount"] == 1190 and rest["remaining"] == 0  # only the notebook was left
    assert [(line["line_index"], line["qty_milli"]) for line in rest["refund"]["lines"]] == [(2, 1000)]
    # cash first, up to what is left of the cash (till-a's refunds count), then card
    assert rest["refund"]["payments"] == [
        {"method": "cash", "amount": 190, "reference": None},
        {"method": "card", "amount": 1000, "reference": None},
    ]
    cash_out = sum(
        p["amount"]
        for r in (by_a.model_dump(mode="json"), apples.model_dump(mode="json"), first["refund"], rest["refund"])
        for p in r["payments"]
        if p["method"] == "cash"
    )
    assert cash_out == cash_taken  # never more cash out than the sale took in cash
    assert pos.error("POST", "/v1/refunds", refund_body(sale.sale_id, scope="whole")) == (409, "refund.exceeds_sale")

    # B's outbox drains through the real worker; the cloud lists both refunds of B against A's sale.
    wait_for(lambda: pos.ok("GET", "/v1/status")["cloud"]["outbox_depth"] == 0, 30, "B's outbox acked")
    wait_for(lambda: company.cloud_list_entry()["refund_count"] == 4, 30, "the refunds listed against the sale")
    entry = company.cloud_list_entry()
    assert entry["refunded_minor"] == 2040 and entry["total_minor"] == 2040 and entry["device_id"] == TILL_A
    detail = company.cloud_sale()
    mine = [r for r in detail["refunds"] if r["device_id"] == DEVICE]
    assert sorted(r["refund_id"] for r in mine) == sorted([first["refund_id"], rest["refund_id"]])
    assert {r["cashier_id"] for r in mine} == {"ada"}


def test_foreign_refund_refusals_roles_unknown_sales_and_no_cloud(company: Company) -> None:
    sale = company.sale
    company.ingest(TILL_A, sale)
    anna, ben, ada = company.terminal.pos(), company.terminal.pos(), company.terminal.pos()
    anna.login("anna")
    ben.login("ben")
    ada.login("ada")
    whole = refund_body(sale.sale_id, scope="whole")
    # `refund` covers the cashier's own till session only; a plain cashier refunds nothing.
    assert ben.error("POST", "/v1/refunds", whole) == (403, "permission.denied")
    assert anna.error("POST", "/v1/refunds", whole) == (403, "permission.denied")
    # Sales the cloud does not know, and a sale of a device of another company, look the same.
    assert ada.error("POST", "/v1/refunds", refund_body(kc.uuid7(), scope="whole")) == (404, "refund.sale_unknown")
    stranger = make_sale(1)
    company.ingest("till-other", stranger)
    assert ada.error("POST", "/v1/refunds", refund_body(stranger.sale_id, scope="whole")) == (
        404,
        "refund.sale_unknown",
    )
    assert ada.error("POST", "/v1/refunds", {**whole, "sale_id": "not-a-uuid"})[1] == "refund.invalid_request"

    # The cloud API goes away: the admin is told so, and nothing is refunded.
    company.stop_api()
    status, code = ada.error("POST", "/v1/refunds", whole)
    assert (status, code) == (503, "refund.cloud_unreachable")
    with contextlib.closing(sqlite3.connect(company.terminal.state_dir / "agent.db")) as store:
        assert store.execute("SELECT count(*) FROM refunds").fetchone()[0] == 0
    with Session(company.api.engine) as session:
        assert session.query(RefundRecord).count() == 0
