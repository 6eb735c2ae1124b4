"""The ingest's fast path for up/sale (cloud_api/ingest/fastparse.py) against the contract.

The property held here: whatever the fast path accepts, `kc.parse_message` accepts too, with
the same envelope fields and a body whose wire form equals the fast path's. Everything the
fast path declines goes to the contract, so rejections (and their reasons) never change.
"""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from broker import contract as kc
from broker.contract.sales import Sale
from cloud_api.db import make_engine
from cloud_api.ingest import apply_batch
from cloud_api.ingest.fastparse import (
    _ENVELOPE_KEYS,
    _LINE_KEYS,
    _PAYMENT_KEYS,
    _SALE_KEYS,
    _TAX_KEYS,
    _check_sale,
    parse,
    parse_up,
)
from cloud_api.ingest.models import IngestedMessage
from cloud_api.ingest.up import Up
from cloud_api.reports.models import SaleLine, SalePayment, SaleRecord
from cloud_api.schema import upgrade as upgrade_schema
from tests.support.sales import make_sale

DEVICE = "till-7"
TOPIC = kc.up_topic(DEVICE, kc.MessageType.SALE)
BOOT = uuid.UUID("6a1f0000-0000-4000-8000-000000000001")


def payload(receipt_no: int = 1, seq: int = 1, **extra: Any) -> bytes:
    return kc.encode_up(make_sale(receipt_no), device_id=DEVICE, seq=seq, boot_id=BOOT, clock_trusted=True, **extra)[1]


def as_dict(data: bytes) -> dict[str, Any]:
    return json.loads(data)


def dumps(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def assert_agrees(topic: str, data: bytes) -> bool:
    """The fast path's answer, checked against the contract's; True when it was taken."""
    fast = _check_sale(topic, data)
    slow = kc.parse_message(topic, data)
    if fast is None:
        chosen = parse(topic, data)
        assert type(chosen) is type(slow)
        if isinstance(slow, kc.Rejection):
            assert chosen == slow
        return False
    assert isinstance(slow, kc.Parsed), f"fast path accepted what the contract refuses: {slow}"
    envelope = slow.envelope
    assert (
        fast.id,
        fast.type,
        fast.device_id,
        fast.seq,
        fast.boot_id,
        fast.created_at,
        fast.clock_trusted,
        fast.correlation_id,
    ) == (
        envelope.id,
        envelope.type,
        envelope.device_id,
        envelope.seq,
        envelope.boot_id,
        envelope.created_at,
        envelope.clock_trusted,
        envelope.correlation_id,
    )
    assert fast.created_at.tzinfo == envelope.created_at.tzinfo
    assert fast.body is None
    assert fast.wire == envelope.body.model_dump(mode="json", exclude_none=True)
    if fast.wire_text is not None:  # stored as is: must be the same document, keys unique
        assert json.loads(fast.wire_text) == fast.wire
        assert json.loads(fast.wire_text, object_pairs_hook=unique_keys) == fast.wire
    return True


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    assert len(keys) == len(set(keys)), f"repeated key in {keys}"
    return dict(pairs)


# --------------------------------------------------------------------------- agreement
def test_the_contracts_own_sales_take_the_fast_path() -> None:
    for receipt in range(1, 30):
        assert assert_agrees(TOPIC, payload(receipt, seq=receipt))
    correlated = payload(correlation_id=uuid.uuid4())
    assert assert_agrees(TOPIC, correlated)
    example = next(e for e in kc_examples() if e.envelope.type is kc.MessageType.SALE)
    assert assert_agrees(example.envelope.topic, kc.encode(example.envelope))
    assert isinstance(parse_up(TOPIC, payload()), Up)


def kc_examples() -> list[Any]:
    from broker.contract.examples import examples

    return list(examples())


def test_the_fast_path_knows_every_field_of_the_contract() -> None:
    # A field added to the contract must be taught to the fast path (or it would send every
    # sale to the slow path, or worse). This fails first.
    assert set(kc.Envelope.model_fields) == _ENVELOPE_KEYS
    assert set(Sale.model_fields) == _SALE_KEYS
    assert set(kc.SaleLine.model_fields) == _LINE_KEYS
    assert set(kc.TaxLine.model_fields) == _TAX_KEYS
    assert set(kc.Payment.model_fields) == _PAYMENT_KEYS


UUID_SPELLINGS = [
    "0B3C8F52-1F6A-4E0E-9D4A-6C2B7E915A10",
    "0b3c8f521f6a4e0e9d4a6c2b7e915a10",
    "{0b3c8f52-1f6a-4e0e-9d4a-6c2b7e915a10}",
    "urn:uuid:0b3c8f52-1f6a-4e0e-9d4a-6c2b7e915a10",
    "00000000-0000-0000-0000-000000000000",
    "ffffffff-ffff-ffff-ffff-ffffffffffff",
    "0b3c8f52-1f6a-4e0e-9d4a-6c2b7e915a1",
    "0b3c8f52-1f6a-4e0e-9d4a-6c2b7e915a100",
    "0195510a-89c0-7000-c000-000000000029",
    "0195510a-89c0-6000-8000-000000000029",
]
TIMESTAMPS = [
    "2025-03-01T09:30:00Z",
    "2025-03-01T09:30:00.000+00:00",
    "2025-03-01T09:30:00.0001Z",
    "2025-03-01T09:30:00.000+01:00",
    "2025-03-01 09:30:00.000Z",
    "2025-02-30T09:30:00.000Z",
    "2025-03-01T24:00:00.000Z",
    "2025-03-01T23:59:60.000Z",
    "1999-03-01T09:30:00.000Z",
    "2999-12-31T23:59:59.999Z",
    "2025-03-01T09:30:00.000z",
    "2025-03-01T09:30:00.000",
    "2024-02-29T00:00:00.000Z",
    "2025-13-01T00:00:00.000Z",
    "2025-00-10T00:00:00.000Z",
]
STRANGE = [
    None,
    0,
    1,
    -1,
    1.0,
    1.5,
    True,
    False,
    "",
    " ",
    "x",
    "A B",
    "a\tb",
    "a\u007fb",
    "é",
    "\u00a0",
    "\u2028",
    "\u3000",
    "x" * 64,
    "x" * 65,
    "x" * 200,
    "x" * 201,
    "€" * 64,
    "EUR",
    "eur",
    "EURO",
    10**15,
    10**15 + 1,
    2**63 - 1,
    2**63,
    10**9,
    10**9 + 1,
    10_000,
    10_001,
    [],
    {},
    [1],
    {"a": 1},
    "cash",
    "card",
    "other",
    "CASH",
    "7",
    *UUID_SPELLINGS,
    *TIMESTAMPS,
]


def leaves(document: Any, path: tuple = ()) -> list[tuple]:
    """Paths to every key and list item of a JSON document."""
    found = []
    if isinstance(document, dict):
        for key, value in document.items():
            found.append((*path, key))
            found.extend(leaves(value, (*path, key)))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found.append((*path, index))
            found.extend(leaves(value, (*path, index)))
    return found


def put(document: Any, path: tuple, value: Any) -> Any:
    copied = copy.deepcopy(document)
    target = copied
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return copied


def drop(document: Any, path: tuple) -> Any:
    copied = copy.deepcopy(document)
    target = copied
    for step in path[:-1]:
        target = target[step]
    del target[path[-1]]
    return copied


def test_every_field_set_to_every_strange_value_agrees() -> None:
    base = as_dict(payload(correlation_id=uuid.uuid4()))
    accepted = tried = 0
    for path in leaves(base):
        variants = [drop(base, path)] + [put(base, path, value) for value in STRANGE]
        if isinstance(path[-1], str):
            parent = base
            for step in path[:-1]:
                parent = parent[step]
            if isinstance(parent, dict):
                variants.append(put(base, (*path[:-1], "extra"), 1))
        for variant in variants:
            tried += 1
            accepted += assert_agrees(TOPIC, dumps(variant))
    assert tried > 3000
    assert accepted > 50  # some mutations stay valid (another code, amount, time, ...)


def test_amounts_that_do_not_add_up_agree() -> None:
    base = as_dict(payload())
    body = ("body",)
    amounts = [
        path
        for path in leaves(base)
        if path[:1] == body and isinstance(_get(base, path), int) and not isinstance(_get(base, path), bool)
    ]
    for path in amounts:
        value = _get(base, path)
        for delta in (-1, 1, -value, 1000):
            assert_agrees(TOPIC, dumps(put(base, path, value + delta)))
    # Lines at two rates, taxes listing one (everything else still adds up).
    one_rate = put(base, ("body", "taxes"), base["body"]["taxes"][:1])
    one_rate["body"]["tax_total"] = one_rate["body"]["taxes"][0]["tax"]
    assert not assert_agrees(TOPIC, dumps(one_rate))
    extra_rate = put(base, ("body", "taxes"), [*base["body"]["taxes"], {"rate_bp": 0, "base": 0, "tax": 0}])
    assert not assert_agrees(TOPIC, dumps(extra_rate))
    listed_twice = put(base, ("body", "taxes"), [*base["body"]["taxes"], {**base["body"]["taxes"][0], "tax": 0}])
    assert not assert_agrees(TOPIC, dumps(listed_twice))
    over_base = copy.deepcopy(base)  # an included tax above its base, totals consistent
    tax = over_base["body"]["taxes"][0]
    over_base["body"]["tax_total"] += tax["base"] + 1 - tax["tax"]
    tax["tax"] = tax["base"] + 1
    assert not assert_agrees(TOPIC, dumps(over_base))
    over_base["body"]["tax_included"] = False  # excluded: allowed, once the totals follow
    over_base["body"]["total"] += over_base["body"]["tax_total"]
    over_base["body"]["payments"][1]["amount"] += over_base["body"]["tax_total"]
    assert assert_agrees(TOPIC, dumps(over_base))
    nothing_sold = copy.deepcopy(base)  # adds up, but a sale has at least one line
    nothing_sold["body"].update(lines=[], taxes=[], payments=[], total=0, tax_total=0, change=0)
    assert not assert_agrees(TOPIC, dumps(nothing_sold))
    none_of_it = copy.deepcopy(base)  # a line of quantity 0 (total 0) adds up too
    none_of_it["body"]["lines"].append({**base["body"]["lines"][0], "qty_milli": 0, "total": 0})
    assert not assert_agrees(TOPIC, dumps(none_of_it))
    paid_nothing = copy.deepcopy(base)  # a payment of 0 adds up too, but is no payment
    paid_nothing["body"]["payments"].append({"method": "card", "amount": 0})
    assert not assert_agrees(TOPIC, dumps(paid_nothing))
    assert assert_agrees(TOPIC, dumps(put(base, ("body", "tax_included"), True)))
    assert not assert_agrees(TOPIC, dumps(put(base, ("body", "tax_included"), False)))


def _get(document: Any, path: tuple) -> Any:
    for step in path:
        document = document[step]
    return document


def test_envelope_and_encoding_oddities_go_to_the_contract() -> None:
    data = payload()
    document = as_dict(data)
    cases = [
        data.replace(b'"name":"Espresso"', b'"name":"Esp\\u00e9resso"'),  # an escape
        data.replace(b'"name":"Espresso"', b'"name":"Esp\\"resso"'),
        data.replace(b'"name":"Espresso"', '"name":"Espréssö ☕"'.encode()),  # raw UTF-8: fine
        data.replace(b'"Espresso"', b'"Espresso","name":"Tea"'),  # duplicate key
        data + b" ",
        b" " + data,
        data[:-1],
        data + b"{}",
        b"",
        b"null",
        b"[]",
        b"\xef\xbb\xbf" + data,
        data.replace(b"Espresso", b"Espr\xffsso"),
        json.dumps(document, indent=1).encode(),
        dumps({**document, "v": 2}),
        dumps({**document, "type": "up.refund"}),
        dumps({**document, "device_id": "till-8"}),
        dumps({**document, "seq": 0}),
        dumps({**document, "body": None}),
        dumps({**document, "correlation_id": None}),
    ]
    for case in cases:
        assert_agrees(TOPIC, case)
    for topic in (
        kc.up_topic("till-8", kc.MessageType.SALE),
        kc.up_topic(DEVICE, kc.MessageType.REFUND),
        "kassa/v1/dev/till-7/up/sale/x",
        "kassa/v2/dev/till-7/up/sale",
        "",
    ):
        assert_agrees(topic, data)
    assert assert_agrees(TOPIC, cases[2])
    # A repeated key: valid (the last copy counts) but its text is not stored as received.
    assert assert_agrees(TOPIC, cases[3])
    assert _check_sale(TOPIC, cases[3]).wire["lines"][0]["name"] == "Tea"
    assert _check_sale(TOPIC, cases[3]).wire_text is None
    assert _check_sale(TOPIC, data).wire_text is not None
    spaced = data.replace(b'"v":1', b'"v" : 1')
    assert assert_agrees(TOPIC, spaced) and _check_sale(TOPIC, spaced).wire_text is None
    body_first = dumps({"body": document["body"], **{k: v for k, v in document.items() if k != "body"}})
    assert assert_agrees(TOPIC, body_first) and _check_sale(TOPIC, body_first).wire_text is None
    big = as_dict(payload())
    big["body"]["lines"] = big["body"]["lines"] * 200  # 600 lines: over the contract's limit
    assert_agrees(TOPIC, dumps(big))
    assert not assert_agrees(TOPIC, data.replace(b'"v":1', b'"v":1.0'))


# A valid sale of random lines, taxes and payments, to show the fast path takes what the
# contract takes, and random damage to it, to show it never takes what the contract refuses.
line_strategy = st.fixed_dictionaries(
    {
        "sku": st.sampled_from(["4006381333931", "PLU-4131", "x"]),
        # Any character the contract allows in a name (C0 controls come out escaped).
        "name": st.text(
            alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x7f"), min_size=1, max_size=40
        ),
        "qty_milli": st.integers(1, 10**6),
        "unit_price": st.integers(0, 10**6),
        "tax_rate_bp": st.sampled_from([0, 700, 1900]),
        "discount_share": st.integers(0, 100),
    }
)


@st.composite
def sales(draw: st.DrawFn) -> dict[str, Any]:
    raw_lines = draw(st.lists(line_strategy, min_size=1, max_size=6))
    lines, bases = [], {}
    for raw in raw_lines:
        gross = kc.line_gross(raw["unit_price"], raw["qty_milli"])
        discount = gross * raw.pop("discount_share") // 100
        line = {**raw, "discount": discount, "total": gross - discount}
        lines.append(line)
        bases[line["tax_rate_bp"]] = bases.get(line["tax_rate_bp"], 0) + line["total"]
    included = draw(st.booleans())
    taxes = [{"rate_bp": rate, "base": base, "tax": base * rate // 10_000} for rate, base in bases.items()]
    tax_total = sum(t["tax"] for t in taxes)
    total = sum(line["total"] for line in lines) + (0 if included else tax_total)
    change = draw(st.integers(0, 500))
    card = draw(st.integers(0, total))
    payments = []
    if card:
        payments.append({"method": "card", "amount": card, "reference": "A1"})
    if total - card + change:
        payments.append({"method": "cash", "amount": total - card + change})
    else:
        change = 0
    return {
        "sale_id": str(uuid.uuid4()),
        "receipt_no": draw(st.integers(1, 10**9)),
        "cashier_id": "C-0107",
        "point_of_sale_id": "POS-MAIN",
        "till_session_id": str(uuid.uuid4()),
        "currency": "EUR",
        "tax_included": included,
        "lines": lines,
        "taxes": taxes,
        "payments": payments,
        "total": total,
        "tax_total": tax_total,
        "change": change,
    }


def envelope_of(body: dict[str, Any]) -> dict[str, Any]:
    document = as_dict(payload())
    document["body"] = body
    return document


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=5,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sales())
def test_random_valid_sales_take_the_fast_path(body: dict[str, Any]) -> None:
    data = dumps(envelope_of(body))
    if b"\\" in data:  # an escaped character in a name: the contract's turn
        assert_agrees(TOPIC, data)
        return
    assert assert_agrees(TOPIC, data)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sales(), st.data())
def test_randomly_damaged_sales_agree(body: dict[str, Any], data: st.DataObject) -> None:
    document = envelope_of(body)
    path = data.draw(st.sampled_from(leaves(document)))
    value = data.draw(json_values | st.sampled_from(STRANGE))
    assert_agrees(TOPIC, dumps(put(document, path, value)))


# --------------------------------------------------------------------------- applied alike
def test_fast_and_contract_parsed_sales_are_stored_alike(database_url: str) -> None:
    payloads = [payload(receipt, seq=receipt) for receipt in range(1, 6)]
    engine = make_engine(database_url)
    upgrade_schema(engine)
    stored = []
    try:
        for parser in (parse, kc.parse_message):
            items = [parser(TOPIC, data) for data in payloads]
            assert all((type(item) is Up) == (parser is parse) for item in items)
            with Session(engine) as session, session.begin():
                plan = apply_batch(session, items)
            assert (plan.applied, plan.duplicates) == (5, 0)
            with Session(engine) as session, session.begin():
                again = apply_batch(session, [parser(TOPIC, data) for data in payloads])
            assert (again.applied, again.duplicates) == (0, 5)
            assert list(again.devices[DEVICE].acked) == [as_id(data) for data in payloads]
            with Session(engine) as session, session.begin():
                sales_rows = session.execute(
                    select(
                        SaleRecord.sale_id,
                        SaleRecord.device_id,
                        SaleRecord.receipt_number,
                        SaleRecord.currency,
                        SaleRecord.total_minor,
                        SaleRecord.sold_at,
                        SaleRecord.payload,
                        SaleRecord.message_id,
                    ).order_by(SaleRecord.receipt_number)
                ).all()
                ledger = session.execute(
                    select(
                        IngestedMessage.message_id,
                        IngestedMessage.device_id,
                        IngestedMessage.seq,
                        IngestedMessage.type,
                        IngestedMessage.boot_id,
                        IngestedMessage.created_at,
                        IngestedMessage.clock_trusted,
                        IngestedMessage.outcome,
                        IngestedMessage.reject_reason,
                    ).order_by(IngestedMessage.seq)
                ).all()
                children = [
                    tuple(row)
                    for model in (SaleLine, SalePayment)
                    for row in session.execute(select(model.__table__).order_by(*model.__table__.primary_key))
                ]
                stored.append(([tuple(row) for row in sales_rows], [tuple(row) for row in ledger], children))
                for model in (SaleRecord, SaleLine, SalePayment, IngestedMessage):
                    session.execute(model.__table__.delete())
    finally:
        engine.dispose()
    assert stored[0] == stored[1]
    assert len(stored[0][0]) == 5 and stored[0][0][0][6] == as_dict(payloads[0])["body"]
    assert len(stored[0][2]) == sum(
        len(as_dict(data)["body"]["lines"]) + len(as_dict(data)["body"]["payments"]) for data in payloads
    )


def as_id(data: bytes) -> uuid.UUID:
    return uuid.UUID(as_dict(data)["id"])
