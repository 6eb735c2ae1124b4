"""Demo step for a bad day: the terminal loses power in the middle of a shift.

A mixin of `Demo` (scenario.py), like business.py. The full fault matrix is tests/faults/;
this step shows the one every shop meets first, end to end on the production-like setup.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import httpx

from tests.demo.business import CASHIER_PIN
from tests.support.agent_process import AgentProcess

if TYPE_CHECKING:
    from tests.demo.scenario import Demo

POWER_CUT_SALES = 6


class ResilienceSteps:
    def power_cut(self: Demo) -> str:
        """Sales, then SIGKILL (no clean stop: a power cut), then a restart. The till resends the
        request it never got an answer for; the cloud ends with every committed sale exactly once."""
        token = json.loads(self._kassactl("--json", "pos", "token", "create", "--label", "demo-power-cut"))["token"]
        session = self._pos_login(token)
        coffee = {"sku": "COFFEE", "name": "Coffee", "qty_milli": 1000, "unit_price": 320, "tax_rate_bp": 700}

        def body(n: int) -> dict[str, Any]:
            return {
                "request_id": f"demo-cut-{n}",
                "currency": "EUR",
                "lines": [coffee],
                "payments": [{"method": "card", "amount": 320}],
            }

        committed: dict[str, str] = {}
        with self._pos_client(token, session) as pos:
            for n in range(1, POWER_CUT_SALES):
                committed[f"demo-cut-{n}"] = self._pos(pos, "POST", "/v1/sales", body(n), 201)["sale_id"]
        assert self.agent is not None
        self.agent.kill()  # SIGKILL right after the last commit: its receipt and upload may be in flight
        self.agent = AgentProcess(self.agent.config_path).start()
        self._wait(
            lambda: self._status()["components"]["cloud"]["connected"],
            "power cut",
            "the restarted agent's broker connection",
        )
        with self._pos_client(token, session) as pos:  # the session and the token survived the restart
            last = f"demo-cut-{POWER_CUT_SALES - 1}"
            again = self._pos(pos, "POST", "/v1/sales", body(POWER_CUT_SALES - 1), 200)
            if not again["replayed"] or again["sale_id"] != committed[last]:
                raise self.failure("power cut", f"the resent request sold again: {again}")
            committed[f"demo-cut-{POWER_CUT_SALES}"] = self._pos(pos, "POST", "/v1/sales", body(POWER_CUT_SALES), 201)[
                "sale_id"
            ]
        expected = self.committed_sale_ids | set(committed.values())

        def cloud_sales() -> list[str]:
            path = f"/companies/{self.company_id}/sales?device={self.agent_name(self.agent)}&limit=1000"
            return [item["sale_id"] for item in self._api(self.api_token, "GET", path, None, 200)[1]["items"]]

        self._wait(
            lambda: set(cloud_sales()) >= expected and self._status()["components"]["cloud"]["outbox_depth"] == 0,
            "power cut",
            f"all {len(expected)} committed sales in the cloud and the outbox drained",
        )
        in_cloud = cloud_sales()
        if sorted(in_cloud) != sorted(expected):
            raise self.failure(
                "power cut",
                f"the cloud holds {len(in_cloud)} sales of this terminal, the terminal committed {len(expected)}",
            )
        self.committed_sale_ids = expected
        return (
            f"{POWER_CUT_SALES - 1} sales, SIGKILL, restart; the resent request was replayed, not sold again; "
            f"the cloud holds exactly the {len(expected)} sales this terminal committed today, each once"
        )

    def _pos_login(self: Demo, token: str) -> str:
        with self._pos_client(token, None) as pos:
            return self._pos(pos, "POST", "/v1/cashier/login", {"code": self.cashier_code, "pin": CASHIER_PIN}, 200)[
                "token"
            ]

    def _pos_client(self: Demo, token: str, session: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}", **({"X-Cashier-Session": session} if session else {})}
        return httpx.Client(base_url=self._status()["components"]["pos_api"]["url"], headers=headers, timeout=10)
