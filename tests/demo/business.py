"""Demo steps for the business around a terminal: licences and cashiers.

A mixin of `Demo` (scenario.py): the steps use its API helpers, terminals and waits.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from tests.support.agent_process import REPO_ROOT, AgentProcess

if TYPE_CHECKING:
    from tests.demo.scenario import Demo

SECOND_DEVICE = "demo-pos-2"
CASHIER_PIN = "4711"


class BusinessSteps:
    def sell_licence(self: Demo) -> str:
        """The owner sells a sealed licence to a partner, the partner hands it to the shop, and the
        key typed on the terminal binds it there."""
        _, partner = self._api(self.owner_token, "POST", "/partners", {"name": "Demo reseller"}, 201)
        _, partner_admin = self._api(
            self.owner_token,
            "POST",
            "/users",
            {"name": "Reseller admin", "role": "partner_admin", "partner_id": partner["id"]},
            201,
        )
        partner_token = partner_admin["token"]
        _, link = self._api(
            self.api_token, "POST", f"/companies/{self.company_id}/link-requests", {"partner_id": partner["id"]}, 201
        )
        self._api(partner_token, "POST", f"/links/{link['id']}/accept", None, 200)
        valid_until = (datetime.now(UTC) + timedelta(days=365)).isoformat()
        _, issued = self._api(
            self.owner_token,
            "POST",
            f"/partners/{partner['id']}/licences",
            {"count": 1, "entitlements": {"points_of_sale": 1}, "valid_until": valid_until},
            201,
        )
        licence_id = issued[0]["id"]
        self._api(partner_token, "POST", f"/licences/{licence_id}/assign", {"company_id": self.company_id}, 200)
        _, licence = self._api(self.api_token, "GET", f"/licences/{licence_id}", None, 200)
        self.licence_id, self.licence_key = licence_id, licence["key"]
        self._kassactl("licence", "enter", self.licence_key.lower())  # typed sloppily: case does not matter
        self._wait(lambda: self._client().call("licence.check")["ok"], "sell licence", "the terminal's lease")
        _, bound = self._api(self.api_token, "GET", f"/licences/{licence_id}", None, 200)
        return (
            f"sealed licence {licence_id} -> partner -> shop; key {self.licence_key} entered with kassactl; "
            f"{bound['state']} to {bound['device_id']} epoch {bound['epoch']}, sales allowed"
        )

    def create_cashier(self: Demo) -> str:
        body = {
            "name": "Alice",
            "operator_code": "0042",
            "roles": ["cashier", "refund", "no_sale"],
            "devices": "all",
            "pin": CASHIER_PIN,
        }
        _, cashier = self._api(self.api_token, "POST", f"/companies/{self.company_id}/cashiers", body, 201)
        self.cashier_code, self.cashier_id = cashier["code"], cashier["id"]
        self._wait(
            lambda: (
                self._client().call("cashiers.list")["version"] >= 1
                and any(c["cashier_id"] == self.cashier_code for c in self._client().call("cashiers.list")["cashiers"])
            ),
            "create cashier",
            "the roster to reach the terminal",
        )
        version = self._client().call("cashiers.list")["version"]
        return (
            f"cashier {self.cashier_code} (operator 0042, roles cashier+refund+no_sale, all devices) "
            f"created with a PIN; roster v{version} cached on {self.agent_name(self.agent)}"
        )

    def shift(self: Demo) -> str:
        """A web POS's day through the local POS API: login, three sales (one in cash), a
        refund, an X report and the Z report that closes the till; all of it reaches the cloud."""
        created = json.loads(self._kassactl("--json", "pos", "token", "create", "--label", "demo-till"))
        api = self._client().call("status")["components"]["pos_api"]["url"]
        pos = httpx.Client(base_url=api, headers={"Authorization": f"Bearer {created['token']}"}, timeout=10)
        try:
            login = self._pos(pos, "POST", "/v1/cashier/login", {"code": self.cashier_code, "pin": CASHIER_PIN}, 200)
            pos.headers["X-Cashier-Session"] = login["token"]
            coffee = {"sku": "COFFEE", "name": "Coffee", "qty_milli": 1000, "unit_price": 320, "tax_rate_bp": 700}
            cake = {"sku": "CAKE", "name": "Cheesecake", "qty_milli": 2000, "unit_price": 450, "tax_rate_bp": 700}
            receipts_before = len(list(self.preview_dir.glob("*.png")))
            sales = [
                self._pos(
                    pos,
                    "POST",
                    "/v1/sales",
                    {
                        "request_id": "demo-1",
                        "currency": "EUR",
                        "lines": [coffee],
                        "payments": [{"method": "card", "amount": 320}],
                    },
                    201,
                ),
                self._pos(
                    pos,
                    "POST",
                    "/v1/sales",
                    {
                        "request_id": "demo-2",
                        "currency": "EUR",
                        "lines": [coffee, cake],
                        "payments": [{"method": "card", "amount": 1220}],
                    },
                    201,
                ),
                self._pos(
                    pos,
                    "POST",
                    "/v1/sales",
                    {
                        "request_id": "demo-3",
                        "currency": "EUR",
                        "lines": [coffee, cake],
                        "payments": [{"method": "cash", "amount": 2000}],
                    },
                    201,
                ),
            ]
            retry = self._pos(
                pos,
                "POST",
                "/v1/sales",
                {
                    "request_id": "demo-3",
                    "currency": "EUR",
                    "lines": [coffee, cake],
                    "payments": [{"method": "cash", "amount": 2000}],
                },
                200,
            )
            if not retry["replayed"] or retry["sale_id"] != sales[2]["sale_id"]:
                raise self.failure("shift", f"a retried request sold again: {retry}")
            cash = sales[2]
            refund = self._pos(
                pos,
                "POST",
                "/v1/refunds",
                {
                    "request_id": "demo-r1",
                    "sale_id": cash["sale_id"],
                    "scope": "lines",
                    "lines": [{"line_index": 1, "qty_milli": 1000}],
                    "reason": "dropped a cake",
                },
                201,
            )
            x = self._pos(pos, "POST", "/v1/reports/x", {}, 200)
            z = self._pos(pos, "POST", "/v1/reports/z", {}, 200)
        finally:
            pos.close()
        self._wait(
            lambda: len(list(self.preview_dir.glob("*.png"))) >= receipts_before + 5,
            "shift",
            "3 sale receipts, a refund receipt and the Z report on the printer",
        )
        # The configuration QR made this terminal Russian (site.language = "ru"): so is the cash sale's receipt.
        cash_receipt = self._receipt_preview("Чек", f"№ {sales[2]['receipt_no']}")
        russian = [
            "Чек",
            "Дата",
            "Кассир",
            "ИТОГО",
            "Наличные",
            "Сдача",
            "в т.ч. НДС 7%",
            "20,00 €",
        ]  # the footer is the company's
        if any(word not in cash_receipt.read_text(encoding="utf-8") for word in russian):
            raise self.failure(
                "shift",
                f"the receipt preview {cash_receipt} is not in Russian:\n{cash_receipt.read_text(encoding='utf-8')}",
            )
        sale_ids = {sale["sale_id"] for sale in sales}
        self.committed_sale_ids = set(sale_ids)  # the power-cut step checks the cloud against all of them

        def in_the_cloud() -> dict[str, Any] | None:
            items = self._api(self.api_token, "GET", f"/companies/{self.company_id}/sales?limit=100", None, 200)[1][
                "items"
            ]
            mine = {item["sale_id"]: item for item in items if item["sale_id"] in sale_ids}
            reports = self._api(self.api_token, "GET", f"/companies/{self.company_id}/z-reports", None, 200)[1]["items"]
            if len(mine) == 3 and mine[cash["sale_id"]]["refund_count"] == 1 and reports:
                return {"refunded": mine[cash["sale_id"]]["refunded_minor"], "z": reports[0]}
            return None

        self._wait(lambda: in_the_cloud() is not None, "shift", "the sales, the refund and the Z report in the cloud")
        cloud = in_the_cloud()
        assert cloud is not None
        return (
            f"POS token, login over HTTP; sales #{sales[0]['receipt_no']}-#{cash['receipt_no']} "
            f"(cash {cash['total']} paid 2000, change {cash['change']}, drawer {cash['drawer']}), "
            "a retry sold nothing; "
            f"refund {refund['amount']}; X {x['sales_count']} sales; Z #{z['z_no']} printed; the cloud shows 3 sales, "
            f"{cloud['refunded']} refunded against the cash sale, Z #{cloud['z']['z_no']}; "
            f"receipts in Russian (site.language ru), preview {cash_receipt.with_suffix('.png')}"
        )

    def migrate_licence(self: Demo) -> str:
        """A second terminal pairs; the same key typed there moves the licence over safely."""
        self.agent2 = self.start_terminal(SECOND_DEVICE, self.workdir / "agent2", with_hardware=False)
        _, pos = self._api(
            self.api_token,
            "POST",
            f"/companies/{self.company_id}/points-of-sale",
            {"name": "Back till", "code": "POS-DEMO-2"},
            201,
        )
        self.second_pos_id = pos["id"]
        self.claim(self.agent2, pos["id"])
        self._kassactl_on(self.agent2, "licence", "enter", self.licence_key)
        self._wait(
            lambda: self._client().call("licence.check")["code"] == "licence.released",
            "migrate licence",
            "the first terminal to release the licence",
        )
        self._wait(
            lambda: self.agent2.client().call("licence.check")["ok"], "migrate licence", "the second terminal's lease"
        )
        _, moved = self._api(self.api_token, "GET", f"/licences/{self.licence_id}", None, 200)
        _, events = self._api(self.api_token, "GET", f"/licences/{self.licence_id}/events", None, 200)
        if (moved["device_id"], moved["state"]) != (SECOND_DEVICE, "bound"):
            raise self.failure("migrate licence", f"the cloud shows {moved['state']} on {moved['device_id']}")
        trail = " -> ".join(
            f"{e['to_state']}" + (f"({e['to_device_id']})" if e["to_device_id"] else "") for e in events
        )
        return (
            f"{SECOND_DEVICE} paired; release order -> signed receipt from {self.agent_name(self.agent)} "
            f"-> epoch {moved['epoch']} granted; audit: {trail}"
        )

    def offline_login(self: Demo) -> str:
        """The broker goes away; the cashier still logs in (PIN checked against the cached hash)."""
        # Her details at the back till: the session there carries this terminal id and operator code.
        self._api(
            self.api_token,
            "PUT",
            f"/companies/{self.company_id}/cashiers/{self.cashier_id}/details/{self.second_pos_id}",
            {"terminal_id": "T-BACK-01", "operator_code": "0043"},
            200,
        )
        _, roster = self._api(
            self.api_token, "GET", f"/companies/{self.company_id}/devices/{SECOND_DEVICE}/roster", None, 200
        )
        self._wait(
            lambda: self.agent2.client().call("cashiers.list")["version"] >= roster["version"],
            "offline login",
            f"roster v{roster['version']} on the second terminal",
        )
        assert self.broker is not None
        self.broker.broker.stop()
        self._wait(
            lambda: not self.agent2.client().call("status")["components"]["cloud"]["connected"],
            "offline login",
            "the terminal to notice the broker is gone",
        )
        session = self._login(self.agent2)
        sell = self.agent2.client().call("cashier.authorize", token=session["token"], action="sell")
        refund = self.agent2.client().call("cashier.authorize", token=session["token"], action="refund_any")
        first = self._login(self.agent)
        sell_on_first = self._client().call("cashier.authorize", token=first["token"], action="sell")
        if not sell["allowed"] or refund["allowed"] or sell_on_first["allowed"]:
            raise self.failure(
                "offline login",
                f"unexpected permissions: sell {sell}, refund_any {refund}, "
                f"sell on the released terminal {sell_on_first}",
            )
        return (
            f"broker stopped; {self.cashier_code} logged in on {SECOND_DEVICE} with PIN from stdin, details "
            f"{session['point_of_sale']}/{session['terminal_id']}/operator {session['operator_code']}: "
            f"sell allowed, refund_any refused ({refund['code']}); "
            f"on {self.agent_name(self.agent)} sell refused ({sell_on_first['code']})"
        )

    def stop_second_terminal(self: Demo) -> str:
        code = self.agent2.stop()
        if code != 0:
            raise self.failure("stop second terminal", f"exit code {code}")
        return "exit 0, store closed"

    # ----------------------------------------------------------------- helpers
    def _receipt_preview(self: Demo, label: str, value: str) -> Path:
        """The printed receipt (its preview text; the .png beside it) with the row ``label ... value``."""
        for path in sorted(self.preview_dir.glob("receipt-*.txt"), reverse=True):
            lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
            if any(line.startswith(label + " ") and line.endswith(" " + value) for line in lines):
                return path
        raise self.failure("shift", f"no receipt preview in {self.preview_dir} has the row {label!r} ... {value!r}")

    def _pos(self: Demo, client: httpx.Client, method: str, path: str, body: object, expected: int) -> Any:
        reply = client.request(method, path, json=body)
        if reply.status_code != expected:
            raise self.failure(
                f"POS API {method} {path}", f"answered {reply.status_code}, expected {expected}: {reply.text}"
            )
        return reply.json()

    def _login(self: Demo, agent: AgentProcess) -> dict[str, Any]:
        output = self._kassactl_on(agent, "--json", "cashier", "login", self.cashier_code, stdin=CASHIER_PIN + "\n")
        return json.loads(output)

    def _kassactl_on(self: Demo, agent: AgentProcess, *args: str, stdin: str | None = None) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "agent.ctl", "--socket", str(agent.socket_path), *args],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            input=stdin,
        )
        if result.returncode != 0:
            raise self.failure(f"kassactl {' '.join(args)}", result.stderr)
        return result.stdout

    def agent_name(self: Demo, agent: AgentProcess | None) -> str:
        return SECOND_DEVICE if agent is getattr(self, "agent2", None) else "demo-pos-1"
