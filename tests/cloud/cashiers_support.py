"""Shared by tests/cloud/test_cashiers_*.py: a company with points of sale and devices,
cashiers made through the HTTP API, and readers of the published rosters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud_api.cashiers.models import OperatorCodeUse
from cloud_api.pushes.models import DesiredState
from tests.cloud.api_support import Api, add_device


@dataclass
class Shop:
    """A company of the test API with its admin token, points of sale and devices."""

    api: Api
    company_id: int
    admin: str
    pos_ids: dict[str, int] = field(default_factory=dict)  # code -> id
    devices: list[str] = field(default_factory=list)

    @property
    def path(self) -> str:
        return f"/companies/{self.company_id}/cashiers"

    def call(self, method: str, path: str, expect: int | None = None, token: str | None = None, **kw: Any) -> Any:
        return self.api.call(method, path, token or self.admin, expect, **kw)

    def create(self, expect: int | None = 201, **body: Any) -> Any:
        body.setdefault("name", "Anna Cashier")
        reply = self.call("POST", self.path, expect, json=body)
        return reply.json() if expect == 201 else reply

    def put_details(self, cashier_id: int, pos: str, expect: int | None = 200, **body: Any) -> Any:
        """Set the cashier's details for the point of sale with code `pos`: the cashier
        (when `expect` is 200) or the reply."""
        reply = self.call("PUT", f"{self.path}/{cashier_id}/details/{self.pos_ids[pos]}", expect, json=body)
        return reply.json() if expect == 200 else reply

    def registry(self) -> dict[str, tuple[int, Any]]:
        """The company's `operator_codes` rows: code -> (owner cashier id, first use)."""
        with Session(self.api.engine) as session:
            rows = session.execute(
                select(OperatorCodeUse.code, OperatorCodeUse.cashier_id, OperatorCodeUse.taken_at).where(
                    OperatorCodeUse.company_id == self.company_id
                )
            )
            return {code: (owner, taken_at) for code, owner, taken_at in rows}

    def rosters(self) -> dict[str, tuple[int, dict[str, Any]]]:
        """The shop's devices that have a roster document: device -> (version, doc)."""
        with Session(self.api.engine) as session:
            rows = session.scalars(
                select(DesiredState).where(DesiredState.domain == "cashiers", DesiredState.device_id.in_(self.devices))
            )
            return {row.device_id: (row.version, row.doc) for row in rows}

    def versions(self) -> dict[str, int]:
        return {device: version for device, (version, _doc) in self.rosters().items()}

    def listed(self, device_id: str) -> dict[str, dict[str, Any]]:
        """The cashiers in the device's latest roster document, by cashier code."""
        _version, doc = self.rosters()[device_id]
        return {cashier["cashier_id"]: cashier for cashier in doc["cashiers"]}


def new_shop(api: Api, name: str, devices: int = 3, stores: tuple[str, ...] = ("MAIN", "AIRPORT")) -> Shop:
    """A company with `stores` and `devices` devices (ids unique in the test database)."""
    company_id, admin = api.company(name)
    shop = Shop(api, company_id, admin)
    for code in stores:
        shop.pos_ids[code] = api.call(
            "POST", f"/companies/{company_id}/points-of-sale", admin, 201, json={"name": code.title(), "code": code}
        ).json()["id"]
    for n in range(1, devices + 1):
        device_id = f"c{company_id}-till-{n}"
        add_device(api, device_id, company_id, next(iter(shop.pos_ids.values()), None))
        shop.devices.append(device_id)
    return shop
