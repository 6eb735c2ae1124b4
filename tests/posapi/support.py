"""Shared by the POS API tests: a terminal with simulated hardware, a roster and a lease
pushed over a real Mosquitto, and an HTTP client that speaks only the POS API."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from agent.ctl_client import ControlClient
from broker.contract.signing import public_key_fingerprint
from broker.launcher import Mosquitto
from drivers.sim.printer import VirtualPrinter
from drivers.sim.scanner import VirtualSerialScanner
from tests.agent.test_cashiers_support import cashier, roster, roster_envelope
from tests.support.agent_process import write_agent_config
from tests.support.licence import identity_public_key, lease_token, licence_doc, trust_section
from tests.support.mqtt_peer import MqttPeer

DEVICE = "pos-0001"
POS = "STORE-1"
# Roles each way: ANNA sells; BEN sells and refunds his own till session; ADA is an admin who also sells.
ANNA = cashier("anna", "1001", ["cashier"], pin="4711", details=[(POS, "T-01", "1001")])
BEN = cashier("ben", "1002", ["cashier", "refund"], pin="2222", details=[(POS, "T-01", "1002")])
ADA = cashier("ada", "1003", ["cashier", "admin"], pin="3333", details=[(POS, "T-01", "1003")])
CASHIERS = (ANNA, BEN, ADA)
PINS = {"anna": "4711", "ben": "2222", "ada": "3333"}


def terminal_config(
    directory: Path,
    mosquitto: Mosquitto | None,
    printer: VirtualPrinter | None,
    scanner: VirtualSerialScanner | None = None,
    *,
    cors: list[str] = (),
    extra: str = "",
    printer_url: str | None = None,
    **mqtt: Any,
) -> Path:
    """agent.toml: POS API on a free port, simulated printer + drawer (+ scanner), the test cloud key.
    `printer_url` reaches the printer another way (through a slow link) instead of `printer.url`."""
    parts = [
        trust_section(),
        f'[site]\npoint_of_sale = "{POS}"\n',
        f"[pos_api]\nport = 0\ncors_origins = {json.dumps(list(cors))}\n",
        "[hardware]\nstatus_poll_s = 0.2\n",
    ]
    if printer is not None:
        parts.append(
            f'[[printers]]\nname = "front"\nurl = "{printer_url or printer.url}"\n\n'
            '[[drawers]]\nname = "cash"\nurl = "printer:?pin=2"\nprinter = "front"\n'
        )
    if scanner is not None:
        parts.append(f'[[scanners]]\nname = "hand"\nurl = "serial://{scanner.path}?suffix=%0D%0A"\n')
    parts.append(extra)
    if mosquitto is not None:
        mqtt.setdefault("host", mosquitto.host)
        mqtt.setdefault("port", mosquitto.port)
    return write_agent_config(directory, device_id=DEVICE, extra="\n".join(parts), **mqtt)


def push_roster_and_lease(
    peer: MqttPeer,
    state_dir: Path,
    *,
    version: int = 1,
    cashiers: tuple[dict, ...] = CASHIERS,
    lifetime_s: int = 7 * 86400,
    issued_at: float | None = None,
) -> None:
    """Retained roster and licence documents, as the cloud publishes them."""
    peer.send(roster_envelope(version, roster(*cashiers), DEVICE))
    key = public_key_fingerprint(identity_public_key(state_dir))
    token = lease_token(DEVICE, key, issued_at=time.time() if issued_at is None else issued_at, lifetime_s=lifetime_s)
    peer.send(licence_doc(version, [token], DEVICE))


def create_pos_token(socket: Path, label: str = "tablet-1") -> str:
    return ControlClient(socket).call("pos.token.create", label=label)["token"]


def wait_for(predicate: Any, timeout_s: float = 20, what: str = "condition", every_s: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")


def api_url(socket: Path) -> str:
    return wait_for(lambda: ControlClient(socket).call("status")["components"]["pos_api"]["url"], 10, "POS API url")


class Pos:
    """A web POS as the API sees it: POS token always, cashier session when logged in."""

    def __init__(self, base_url: str, token: str | None) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=30)
        self.token = token
        self.session: str | None = None

    def headers(self, session: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        if session or self.session:
            headers["X-Cashier-Session"] = session or self.session  # type: ignore[assignment]
        return headers

    def request(self, method: str, path: str, body: Any = None, session: str | None = None) -> httpx.Response:
        return self.http.request(method, path, json=body, headers=self.headers(session))

    def ok(self, method: str, path: str, body: Any = None, expect: tuple[int, ...] = (200, 201)) -> dict[str, Any]:
        reply = self.request(method, path, body)
        assert reply.status_code in expect, (reply.status_code, reply.text)
        return reply.json()

    def error(self, method: str, path: str, body: Any = None, session: str | None = None) -> tuple[int, str]:
        reply = self.request(method, path, body, session)
        assert reply.status_code >= 400, reply.text
        error = reply.json()["error"]
        assert set(error) >= {"code", "message"}
        return reply.status_code, error["code"]

    def login(self, cashier_id: str, pin: str | None = None) -> dict[str, Any]:
        result = self.ok("POST", "/v1/cashier/login", {"code": cashier_id, "pin": pin or PINS[cashier_id]})
        self.session = result["token"]
        return result

    def close(self) -> None:
        self.http.close()


def sale_body(*, cash: int | None = 1500, card: int | None = None, request_id: str | None = None) -> dict[str, Any]:
    """Two lines, 12.49 EUR gross at 19 % VAT; paid in cash (change given) or by card."""
    payments = []
    if cash is not None:
        payments.append({"method": "cash", "amount": cash})
    if card is not None:
        payments.append({"method": "card", "amount": card, "reference": "AUTH-1"})
    return {
        "request_id": request_id or str(uuid.uuid4()),
        "currency": "EUR",
        "lines": [
            {"sku": "4006381333931", "name": "Pencil", "qty_milli": 2000, "unit_price": 250, "tax_rate_bp": 1900},
            {"sku": "COFFEE", "name": "Coffee 500 g", "qty_milli": 1000, "unit_price": 749, "tax_rate_bp": 1900},
        ],
        "payments": payments,
    }


SALE_TOTAL = 2 * 250 + 749


@contextmanager
def pos_client(base_url: str, token: str | None) -> Iterator[Pos]:
    pos = Pos(base_url, token)
    try:
        yield pos
    finally:
        pos.close()
