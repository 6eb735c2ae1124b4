"""Shared by the sales tests (no tests here): a running agent with a simulated printer and
drawer, a real signed licence lease, a pushed roster, and helpers to call the component.
The ``printer`` and ``till`` fixtures are in conftest.py."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from agent import wiring
from agent.sales.models import PaymentIn, RefundRequest, SaleLineIn, SaleRequest
from broker import contract as kc
from drivers.sim.printer import VirtualPrinter
from tests.agent.test_cashiers_support import DEVICE, cashier, push_inprocess, roster
from tests.support.agent_process import write_agent_config
from tests.support.hardware import hardware_section
from tests.support.inprocess import InProcessAgent
from tests.support.licence import lease_token, licence_doc, trust_section

ROSTER = roster(
    cashier("c-sell", "3001", ["cashier"], details=[("shop-1", "T-01", "3101")]),
    cashier("c-sell2", "3002", ["cashier"]),
    cashier("c-refund", "3003", ["cashier", "refund"]),
    cashier("c-admin", "3004", ["admin"]),
    cashier("c-lock", "3005", ["cashier"]),
)


def sales_config(directory: Path, printer: VirtualPrinter) -> Path:
    extra = trust_section() + hardware_section(printer.url)
    return write_agent_config(directory, device_id=DEVICE, extra=extra)


class Till:
    """One running agent and shortcuts to its sales component."""

    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.agent = InProcessAgent(config_path).start()
        self.tokens: dict[str, str] = {}

    @property
    def sales(self) -> Any:
        return self.agent.agent.component(wiring.SALES)

    @property
    def hardware(self) -> Any:
        return self.agent.agent.component(wiring.HARDWARE)

    def licence(self, version: int = 1) -> None:
        licence = self.agent.agent.component(wiring.LICENCE)
        token = lease_token(DEVICE, licence.device_key_fingerprint, issued_at=time.time() - 5)
        assert self.agent.call(lambda: self.agent.cloud.inbound.handle_state(licence_doc(version, [token], DEVICE)))
        assert licence.sale_verdict().ok

    def login(self, who: str, point_of_sale: str | None = None) -> str:
        cashiers = self.agent.agent.component(wiring.CASHIERS)
        result = self.run(cashiers.login(who, "1234", point_of_sale))
        token = result.token if hasattr(result, "token") else result["token"]
        self.tokens[who] = token
        return token

    def run(self, coroutine: Any, timeout_s: float = 20) -> Any:
        assert self.agent._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self.agent._loop).result(timeout_s)

    def sell(self, who: str, request: SaleRequest) -> Any:
        return self.run(self.sales.commit_sale(self.tokens[who], request))

    def refund(self, who: str, request: RefundRequest) -> Any:
        return self.run(self.sales.refund(self.tokens[who], request))

    def outbox(self, type_: str) -> list[dict[str, Any]]:
        """Bodies of queued up messages of ``type_`` (e.g. "up.sale"), oldest first."""
        rows = (
            self.agent.agent.store.read()
            .execute("SELECT payload FROM outbox WHERE type = ? ORDER BY seq", (type_,))
            .fetchall()
        )
        return [json.loads(row[0])["body"] for row in rows]

    def count(self, sql: str, *args: Any) -> int:
        return self.agent.agent.store.read().execute(sql, args).fetchone()[0]

    def stop(self) -> None:
        self.agent.stop()


def start_till(directory: Path, printer: VirtualPrinter) -> Till:
    path = directory / "agent" / "agent.toml"
    till = Till(path if path.exists() else sales_config(directory / "agent", printer))
    push_inprocess(till.agent, 1, ROSTER)
    return till


def sale_request(
    request_id: str,
    *,
    lines: list[tuple[int, int, int]] | None = None,
    pay: list[tuple[str, int]] | None = None,
    discount: int = 0,
    tax_included: bool = True,
    currency: str = "EUR",
) -> SaleRequest:
    """lines: (qty_milli, unit_price, tax_rate_bp); pay: (method, amount)."""
    lines = lines or [(1000, 250, 1900), (2000, 199, 700)]
    return SaleRequest(
        request_id=request_id,
        currency=currency,
        tax_included=tax_included,
        discount=discount,
        lines=[
            SaleLineIn(sku=f"SKU{i}", name=f"Item {i}", qty_milli=q, unit_price=p, tax_rate_bp=r)
            for i, (q, p, r) in enumerate(lines)
        ],
        payments=[PaymentIn(method=m, amount=a) for m, a in (pay or [("cash", 1000)])],
    )


def wait_printed(till: Till, job_id: str, timeout_s: float = 10) -> None:
    till.agent.wait_until(
        lambda: till.hardware.queue.get(job_id).state == "printed", timeout_s, f"job {job_id} printed"
    )


__all__ = ["DEVICE", "Till", "kc", "sale_request", "start_till", "wait_printed"]
