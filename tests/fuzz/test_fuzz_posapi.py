"""Fuzzing POS API request bodies: sales, refunds, printed documents, logins, drawer, reports.

The OpenAPI shape is schemathesis' job (tests/posapi/test_api_contract.py); this module
fuzzes what the bodies mean: money at and past its limits, quantities, discounts, payments
that do or do not cover the total, request ids, and every kind of Unicode text.

- in process, the sales core's parsers: ``parse(SaleRequest, ...)`` + ``price_sale`` refuse
  with a stable ``sale.*`` code and a 4xx status, or price a sale that the contract's ``Sale``
  accepts and whose receipt renders; ``parse_document`` refuses with ``print.invalid_document``
  or gives a receipt the printer driver renders;
- over real HTTP to the POS API of a running (in-process) agent with a roster, a lease and a
  logged-in cashier: no 5xx, every 4xx is ``{"error": {"code", "message"}}``;
- the first message on the WebSocket ``/v1/events`` (the token): ``hello`` or an error with a
  code and close code 4401, never a dropped connection.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from agent.ctl_client import ControlClient
from agent.sales.compute import price_sale
from agent.sales.documents import BLOCK_KEYS, parse_document
from agent.sales.models import SaleRequest, SalesRefused, parse
from agent.sales.receipts import Template, sale_receipt
from broker import contract as kc
from broker.contract.signing import public_key_fingerprint
from drivers.printers.profile import load_profile
from drivers.receipt.escpos import render_escpos
from tests.agent.test_cashiers_support import cashier, roster, roster_envelope
from tests.fuzz.strategies import NASTY_INTS, NASTY_TEXT, dumps, json_values, mostly, mutated, weighted
from tests.support.agent_process import write_agent_config
from tests.support.inprocess import InProcessAgent
from tests.support.licence import identity_public_key, lease_token, licence_doc, trust_section

pytestmark = pytest.mark.timeout(120)

DEVICE, POS = "pos-0001", "STORE-1"
FIELDS = {
    "cashier_id": "ben",
    "point_of_sale": POS,
    "terminal_id": "T-01",
    "operator_code": "1002",
    "till_session_id": str(uuid.uuid4()),
}

texts = (
    st.sampled_from(NASTY_TEXT) | st.text(max_size=30) | st.text(st.characters(codec="utf-8"), min_size=1, max_size=12)
)
# Printable text of any script (what a shop types as an item name), and codes without spaces.
names = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40)
codes = st.sampled_from(["4006381333931", "COFFEE", "x" * 64, "PLU-4131"]) | st.text(
    "ABCXYZ0189-_./", min_size=1, max_size=12
)


money = mostly(
    st.integers(0, 10**5),
    st.sampled_from([0, 1, 99, 10**15, 10**15 + 1, -1, 2**53 + 1, 2**63, 10**30, 1.5, "100", None]),
)
quantities = mostly(
    st.sampled_from([1000, 2000, 250, 1]) | st.integers(1, 10**5),
    st.sampled_from([0, -1, 10**9, 10**9 + 1, 2**63, 1000.0, True]),
)
rates = mostly(st.sampled_from([0, 700, 1900, 2000]), st.sampled_from([10_000, 10_001, -1, 19.0]) | st.integers())
methods = mostly(st.sampled_from(["cash", "card", "other"]), st.sampled_from(["CASH", "", "voucher", None, 1]))

sale_lines = st.fixed_dictionaries(
    {
        "sku": mostly(codes, texts),
        "name": mostly(names, texts),
        "qty_milli": quantities,
        "unit_price": money,
        "tax_rate_bp": rates,
    },
    optional={"discount": mostly(st.sampled_from([0, 1, 10]), money)},
)
payments = st.fixed_dictionaries(
    {"method": methods, "amount": money}, optional={"reference": mostly(codes, texts | st.none())}
)


@st.composite
def sale_bodies(draw: st.DrawFn) -> Any:
    """A sale body; mostly paid exactly (card and cash, change in cash), so that it sells."""
    body: dict[str, Any] = {
        "request_id": draw(mostly(st.uuids().map(str), texts)),
        "currency": draw(
            mostly(st.sampled_from(["EUR", "JPY", "KWD"]), st.sampled_from(["eur", "EURO", "€", "", None]))
        ),
        "lines": draw(
            mostly(st.lists(sale_lines, min_size=1, max_size=4), st.lists(sale_lines, max_size=0) | json_values)
        ),
        "payments": draw(st.lists(payments, max_size=3)),
    }
    for key, values in (
        ("tax_included", mostly(st.booleans(), st.sampled_from([None, 1, "true"]))),
        ("discount", mostly(st.sampled_from([0, 1, 5]), money)),
        ("print_receipt", st.booleans()),
    ):
        if draw(st.booleans()):
            body[key] = draw(values)
    if draw(mostly(st.just(True), st.just(False), odds=3)):
        total = _total(body)
        if total is not None:
            change = draw(st.sampled_from([0, 0, 1, 500]))
            card = draw(st.integers(0, total))
            body["payments"] = [
                p
                for p in (
                    {"method": "card", "amount": card, "reference": "AUTH-1"},
                    {"method": "cash", "amount": total - card + change},
                )
                if p["amount"] > 0
            ]
    if draw(st.integers(0, 7)) == 0:
        return draw(mutated(body))
    return body


def _total(body: dict[str, Any]) -> int | None:
    """What the lines cost, as the POS would show it (priced with an overpayment in cash)."""
    try:
        probe = parse(SaleRequest, {**body, "payments": [{"method": "cash", "amount": 10**15}]})
        return price_sale(probe).total
    except SalesRefused:
        return None


def assert_refused(exc: SalesRefused, family: str) -> None:
    assert exc.code.startswith(f"{family}.") and exc.message.strip(), exc.as_dict()
    assert 400 <= exc.http_status < 500, exc.as_dict()


# ------------------------------------------------------------------------ in process
def check_sale_body(body: Any) -> str:
    """Refused with a sale.* code and a 4xx, or priced into a Sale the contract accepts and
    whose receipt renders. Returns the outcome (for hypothesis' statistics)."""
    try:
        request = parse(SaleRequest, body)
        priced = price_sale(request)
    except SalesRefused as exc:
        assert_refused(exc, "sale")
        return exc.code
    sale = priced.sale(request, sale_id=kc.uuid7(), receipt_no=1, fields=FIELDS)  # the contract's Sale accepts it
    assert priced.total == sale.total and priced.change == sum(p.amount for p in request.payments) - sale.total
    wire = sale.model_dump(mode="json")
    assert kc.Sale.model_validate(wire) == sale
    receipt = sale_receipt(wire, created_at=time.time(), device_id=DEVICE, template=Template())
    assert render_escpos(receipt, load_profile("default"))
    return "priced"


@settings(max_examples=50, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(body=sale_bodies())
def test_sale_bodies_are_priced_into_valid_sales_or_refused_with_a_code(body: Any) -> None:
    event(check_sale_body(body))


def test_money_at_the_limits_is_priced_or_refused_with_a_code() -> None:
    """Not random: every amount at and past the limits in each number of a sale, alone and
    with a second line (totals add up past the limit)."""
    outcomes = set()
    for field in ("unit_price", "qty_milli", "discount", "tax_rate_bp", "amount", "receipt_discount"):
        for value in [*NASTY_INTS, 10**12, 10**15 // 1000, 10**15 // 2 + 1]:
            for lines in (1, 2):
                line = {
                    "sku": "X",
                    "name": "Big",
                    "qty_milli": 1000,
                    "unit_price": 10**15 // 2 if lines == 2 else 100,
                    "tax_rate_bp": 1900,
                }
                pay = {"method": "cash", "amount": 10**15}
                if field == "amount":
                    pay["amount"] = value
                elif field != "receipt_discount":
                    line[field] = value
                body = {
                    "request_id": "r",
                    "currency": "EUR",
                    "tax_included": lines == 1,
                    "lines": [line] * lines,
                    "payments": [pay],
                }
                if field == "receipt_discount":
                    body["discount"] = value
                outcomes.add(check_sale_body(body))
    assert "priced" in outcomes and len(outcomes) > 4, outcomes


ARABIC_EAN = "٤٠٠٦٣٨١٣٣٣٩٣١"  # 4006381333931 in Arabic-Indic digits: str.isdigit() is true
styles = {
    "bold": mostly(st.booleans(), json_values),
    "underline": mostly(st.sampled_from([0, 1, 2]), st.sampled_from([3, -1, True, "1"])),
    "width": mostly(st.integers(1, 8), st.integers()),
    "height": mostly(st.integers(1, 8), st.sampled_from([0, 9, 1.0])),
    "font": mostly(st.sampled_from(["a", "b"]), st.sampled_from(["c", "A", 1])),
    "invert": mostly(st.booleans(), json_values),
    "align": mostly(st.sampled_from(["left", "center", "right"]), st.sampled_from(["middle", "", None, 1])),
}
barcodes = st.sampled_from(
    [
        ("EAN13", "4006381333931"),
        ("EAN13", "400638133393"),
        ("EAN8", "96385074"),
        ("UPC-A", "036000291452"),
        ("CODE39", "ABC-123"),
        ("CODE128", "Kassa #1"),
        ("ITF", "1234"),
        ("ean-13", "4006381333931"),
        ("EAN13", "4006381333932"),
        ("EAN13", ARABIC_EAN),
        ("EAN13", "²" * 13),
        ("CODE128", "é"),
        ("CODE128", "x" * 254),
        ("ITF", "123"),
        ("QR", "x"),
        ("CODE39", "abc"),
    ]
)
options = {
    "text": mostly(names | texts, json_values),
    "cells": mostly(st.lists(names | texts, min_size=1, max_size=3), json_values),
    "char": mostly(st.sampled_from(["-", "=", "*", "─"]), texts),
    "lines": mostly(st.integers(0, 5), st.sampled_from([256, -1, 1.5, "1"])),
    "data": mostly(names | texts, st.sampled_from(["", "x" * 3000, ARABIC_EAN]) | json_values),
    "size": mostly(st.integers(1, 16), st.sampled_from([0, 17, -1])),
    "error_correction": mostly(st.sampled_from(["L", "M", "Q", "H"]), st.sampled_from(["X", "", None])),
    "module_width": mostly(st.integers(2, 6), st.sampled_from([0, 1, 7])),
    "text_position": mostly(st.sampled_from(["below", "above", "none", "both"]), st.sampled_from(["x", None])),
    "partial": st.booleans() | json_values,
    "feed_lines": mostly(st.integers(0, 10), st.sampled_from([-1, 256])),
    **styles,
}


@st.composite
def blocks(draw: st.DrawFn) -> Any:
    kind = draw(mostly(st.sampled_from(sorted(BLOCK_KEYS)), st.sampled_from(["logo", "drawer", "", None, 1])))
    allowed = sorted(BLOCK_KEYS.get(kind, {"text"})) if isinstance(kind, str) else ["text"]
    names_ = draw(
        st.lists(mostly(st.sampled_from(allowed), st.sampled_from(["pin", "image", "type2"])), unique=True, max_size=3)
    )
    required = {"text": ["text"], "columns": ["cells"], "qr": ["data"], "barcode": ["data"]}.get(kind, [])  # type: ignore[arg-type]
    block = {"type": kind, **{name: draw(options.get(name, json_values)) for name in [*required, *names_]}}
    if kind == "barcode" and draw(st.booleans()):
        block["symbology"], block["data"] = draw(barcodes)
    return block


documents = mostly(
    st.fixed_dictionaries({"blocks": st.lists(blocks(), min_size=1, max_size=4)}),
    st.fixed_dictionaries({"blocks": st.lists(blocks(), max_size=0)}) | json_values | st.lists(blocks(), max_size=2),
)


@settings(max_examples=50, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(document=documents)
def test_printed_documents_render_or_are_refused_with_a_reason(document: Any) -> None:
    try:
        receipt = parse_document(document)
    except SalesRefused as exc:
        assert exc.code == "print.invalid_document" and exc.message.strip() and exc.http_status == 422
        event("refused")
        return
    event("rendered")
    assert render_escpos(receipt, load_profile("default"))


# ------------------------------------------------------------------------ over HTTP
@dataclass
class Terminal:
    agent: InProcessAgent
    http: httpx.Client
    sale_id: str


@pytest.fixture(scope="module")
def terminal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Terminal]:
    directory = tmp_path_factory.mktemp("terminal")
    extra = (
        trust_section() + f'[site]\npoint_of_sale = "{POS}"\n'
        f'[[printers]]\nname = "front"\nurl = "file://{directory / "printer.out"}"\n\n'
        '[[drawers]]\nname = "cash"\nurl = "printer:?pin=2"\nprinter = "front"\n'
    )
    agent = InProcessAgent(write_agent_config(directory / "agent", device_id=DEVICE, extra=extra)).start()
    try:
        people = roster(
            cashier("ben", "1002", ["cashier", "refund"], pin="2222", details=[(POS, "T-01", "1002")]),
            cashier("bob", "1004", ["cashier"], pin="4444", details=[(POS, "T-02", "1004")]),
        )
        agent.call(lambda: agent.cloud.inbound.handle_state(roster_envelope(1, people, DEVICE)))
        key = public_key_fingerprint(identity_public_key(agent.config.paths.state_dir))
        lease = licence_doc(1, [lease_token(DEVICE, key, issued_at=time.time())], DEVICE)
        agent.call(lambda: agent.cloud.inbound.handle_state(lease))
        control = ControlClient(agent.config.paths.control_socket)
        token = control.call("pos.token.create", label="fuzz")["token"]
        url = control.call("status")["components"]["pos_api"]["url"]
        http = httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {token}"})
        login = http.post("/v1/cashier/login", json={"code": "ben", "pin": "2222"})
        assert login.status_code == 200, login.text
        http.headers["X-Cashier-Session"] = login.json()["token"]
        sale = http.post(
            "/v1/sales",
            json={
                "request_id": "first",
                "currency": "EUR",
                "print_receipt": False,
                "lines": [{"sku": "TEA", "name": "Tea", "qty_milli": 3000, "unit_price": 250, "tax_rate_bp": 700}],
                "payments": [{"method": "cash", "amount": 1000}],
            },
        )
        assert sale.status_code == 201, sale.text
        yield Terminal(agent, http, sale.json()["sale_id"])
        http.close()
    finally:
        agent.stop()


def assert_answer(reply: httpx.Response) -> str:
    """Never a 5xx; an error is {"error": {"code", "message"}} with both filled in. Returns
    the status and error code (for hypothesis' statistics)."""
    assert reply.status_code < 500, (reply.status_code, reply.text[:2000])
    if reply.status_code < 400:
        return str(reply.status_code)
    error = reply.json()["error"]
    assert (
        isinstance(error["code"], str)
        and error["code"]
        and isinstance(error["message"], str)
        and error["message"].strip()
    )
    return f"{reply.status_code} {error['code']}"


refund_lines = st.fixed_dictionaries(
    {"line_index": st.sampled_from([0, 1, -1, 499, 500, 2**63]), "qty_milli": quantities}
)


@st.composite
def refund_bodies(draw: st.DrawFn, sale_id: str) -> Any:
    body: dict[str, Any] = {
        "request_id": draw(st.uuids().map(str) | texts),
        "reason": draw(st.sampled_from(["broken", "Kunde: zurück ☕"]) | texts),
        "sale_id": draw(st.sampled_from([sale_id, sale_id.upper(), str(uuid.uuid4()), "x", "\ud800"]) | texts),
    }
    if draw(st.booleans()):
        body["scope"] = draw(st.sampled_from(["whole", "lines", "partial", None]))
    if draw(st.booleans()):
        body["lines"] = draw(st.lists(refund_lines, max_size=3))
    if draw(st.booleans()):
        body["payments"] = draw(st.lists(payments, max_size=2) | st.none())
    if draw(st.integers(0, 4)) == 0:
        return draw(mutated(body))
    return body


logins = st.fixed_dictionaries(
    {"code": st.sampled_from(["bob", "1004", "ben"]) | texts, "pin": st.sampled_from(["4444", "1"]) | texts},
    optional={"point_of_sale": texts | st.sampled_from([POS, None])},
)
small_bodies = st.fixed_dictionaries(
    {}, optional={"drawer": texts | st.sampled_from(["cash", None]), "print": st.booleans() | json_values}
)


@st.composite
def requests(draw: st.DrawFn, sale_id: str) -> tuple[str, Any]:
    """(path, JSON body) for every route that reads a body."""
    route = draw(
        st.sampled_from(["sales", "sales", "refunds", "refunds", "print", "login", "drawer", "report", "reprint"])
    )
    if route == "sales":
        return "/v1/sales", draw(sale_bodies())
    if route == "refunds":
        return "/v1/refunds", draw(refund_bodies(sale_id))
    if route == "print":
        return "/v1/print", {"document": draw(documents)}
    if route == "login":
        return "/v1/cashier/login", draw(logins | json_values)
    if route == "drawer":
        return "/v1/drawer/open", draw(small_bodies)
    if route == "report":
        return "/v1/reports/x", draw(small_bodies)
    return f"/v1/sales/{draw(st.sampled_from([sale_id, 'nope', '%FF', 'x' * 65]))}/reprint", None


@settings(
    max_examples=45, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(data=st.data())
def test_every_body_gets_a_result_or_an_error_with_a_code(terminal: Terminal, data: st.DataObject) -> None:
    path, body = data.draw(requests(terminal.sale_id))
    event(
        assert_answer(
            terminal.http.post(
                path,
                content=dumps(body, ascii_only=data.draw(st.booleans())),
                headers={"Content-Type": "application/json"},
            )
        )
    )


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(
    path=st.sampled_from(["/v1/sales", "/v1/refunds", "/v1/print", "/v1/cashier/login", "/v1/reports/z"]),
    raw=st.binary(max_size=200) | st.sampled_from([b"", b"null", b"[]", b"1" * 5000, b"[" * 5000, b'{"lines": NaN}']),
    content_type=st.sampled_from(
        ["application/json", "text/plain", "application/x-www-form-urlencoded", "", "application/json; charset=latin-1"]
    ),
)
def test_raw_bodies_get_an_answer_never_a_server_error(
    terminal: Terminal, path: str, raw: bytes, content_type: str
) -> None:
    event(
        assert_answer(
            terminal.http.post(path, content=raw, headers={"Content-Type": content_type} if content_type else {})
        )
    )


# ------------------------------------------------------------------ WebSocket hello
AWKWARD_FIRST_MESSAGES = [
    "",
    "null",
    "[" * 5000,
    "{" * 5000,
    '{"a":' * 5000,
    "1" * 5000,
    '{"token": NaN}',
    '{"token": "\\ud800"}',
]


def first_messages(token: str) -> st.SearchStrategy[str | bytes]:
    """What a till might send first on /v1/events: the hello with a token, mutated or not, a
    bare JSON value, text that is not JSON, or a binary frame."""
    hello = {"token": token, "kinds": ["scan", "cashier.login"]}
    as_json = mostly(st.just(hello), mutated(hello), odds=2) | json_values
    return weighted(
        (
            4,
            st.tuples(as_json, st.booleans()).map(
                lambda pair: dumps(pair[0], ascii_only=pair[1]).decode("utf-8", "replace")
            ),
        ),
        (1, st.sampled_from(AWKWARD_FIRST_MESSAGES)),
        (1, texts.map(lambda text: text.encode("utf-8", "replace").decode())),
        (1, st.binary(max_size=64)),
    )


def check_first_message(terminal: Terminal, first: str | bytes) -> str:
    """The stream answers its first message with ``hello`` or with an error (code, message)
    and close code 4401; never a dropped connection or an internal-error close (1011)."""
    url = str(terminal.http.base_url).replace("http://", "ws://").rstrip("/") + "/v1/events"
    with connect(url) as ws:
        ws.send(first)
        reply = json.loads(ws.recv(10))
        if reply["kind"] == "hello":
            return "hello"
        assert reply["kind"] == "error", reply
        assert reply["error"]["code"].startswith("pos.token") and reply["error"]["message"].strip(), reply
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401, closed.value
        return str(reply["error"]["code"])


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(data=st.data())
def test_every_first_websocket_message_gets_a_hello_or_an_error_with_a_code(
    terminal: Terminal, data: st.DataObject
) -> None:
    token = terminal.http.headers["Authorization"].removeprefix("Bearer ")
    event(check_first_message(terminal, data.draw(first_messages(token))))


@pytest.mark.parametrize("first", AWKWARD_FIRST_MESSAGES, ids=lambda text: text[:12])
def test_awkward_first_websocket_messages_are_refused_with_a_code(terminal: Terminal, first: str) -> None:
    assert check_first_message(terminal, first).startswith("pos.token")
