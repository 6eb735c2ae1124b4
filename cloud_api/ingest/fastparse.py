"""Parsing received messages, with a fast path for the common case: a canonical up/sale.

The contract's parser (`kc.parse_message`) validates a sale in ~120-150 µs, mostly Python
validators that pydantic calls for every amount of every line; at thousands of sales per
second that was the worker's largest cost. `parse` first tries `_check_sale`: one
`validate_json` against the typed dicts below (types, ranges, patterns, closed key sets: all
checked in pydantic-core, no Python callback), then the arithmetic of `Sale` in Python.

The fast path never decides anything the contract would decide differently: it accepts only
payloads it can prove valid, in the canonical form the contract's own encoder produces
(lower-case hyphenated UUIDs, millisecond UTC timestamps, every defaulted key present, no
nulls, no escapes, ASCII codes) and whose amounts add up. Anything else, valid or not, goes
to `kc.parse_message`, so every rejection and its reason still come from the contract. For
what it accepts, the result is the same `Up` the contract's envelope gives, and its `wire`
equals `Sale.model_dump(mode="json", exclude_none=True)`. tests/cloud/test_ingest_parse.py
holds the two paths to that, field by field and on mutated and random payloads, and fails
when the contract gains a field this module does not know.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, NotRequired, cast

from pydantic import ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict

from broker import contract as kc
from broker.contract.fields import MAX_MINOR_UNITS, MAX_SEQ
from broker.contract.sales import MAX_LINES, MAX_PAYMENTS
from cloud_api.ingest.up import Up

__all__ = ["parse", "parse_batch", "parse_up"]

# ----------------------------------------------------------------------------- the schema
# Each type is the contract's, or narrower (never wider): see the comments.
_CLOSED = ConfigDict(extra="forbid", strict=True)
_Money = Annotated[int, Field(strict=True, ge=0, le=MAX_MINOR_UNITS)]
_PositiveMoney = Annotated[int, Field(strict=True, gt=0, le=MAX_MINOR_UNITS)]
_MilliQuantity = Annotated[int, Field(strict=True, gt=0, le=10**9)]
_BasisPoints = Annotated[int, Field(strict=True, ge=0, le=10_000)]
_Seq = Annotated[int, Field(strict=True, ge=1, le=MAX_SEQ)]
# Canonical UUID text only: what str(uuid) gives, so the text is its own wire form.
_UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
_UuidText = Annotated[str, StringConstraints(strict=True, pattern=_UUID_PATTERN)]
# UUIDv7: version nibble 7, RFC 9562 variant (10xx).
_MessageIdText = Annotated[
    str,
    StringConstraints(strict=True, pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"),
]
# The contract's Code is 1-64 characters without whitespace or control characters; printable
# ASCII without the space is a subset of that.
_Code = Annotated[str, StringConstraints(strict=True, pattern=r"^[!-~]{1,64}$")]
_ItemName = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
_Currency = Annotated[str, StringConstraints(strict=True, pattern=r"^[A-Z]{3}$")]
_OperatorCode = Annotated[str, StringConstraints(strict=True, pattern=r"^[0-9]{4}$")]
# What the contract's encoder writes (UTC, milliseconds, "Z"); calendar checked afterwards.
_Timestamp = Annotated[
    str, StringConstraints(strict=True, pattern=r"^2[0-9]{3}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$")
]
_Version = Annotated[int, Field(strict=True, ge=kc.PROTOCOL_VERSION, le=kc.PROTOCOL_VERSION)]


@with_config(_CLOSED)
class _Line(TypedDict):
    sku: _Code
    name: _ItemName
    qty_milli: _MilliQuantity
    unit_price: _Money
    tax_rate_bp: _BasisPoints
    discount: _Money  # defaulted in the contract, required here (then wire == received)
    total: _Money


@with_config(_CLOSED)
class _Tax(TypedDict):
    rate_bp: _BasisPoints
    base: _Money
    tax: _Money


@with_config(_CLOSED)
class _Payment(TypedDict):
    method: Literal["cash", "card", "other"]
    amount: _PositiveMoney
    reference: NotRequired[_Code]  # absent, or a code: null goes to the contract


@with_config(_CLOSED)
class _Sale(TypedDict):
    sale_id: _UuidText
    receipt_no: _Seq  # the contract has no upper bound; the database column has this one
    cashier_id: _Code
    point_of_sale_id: _Code
    till_session_id: _UuidText
    terminal_id: NotRequired[_Code]  # absent, or a code: null goes to the contract
    operator_code: NotRequired[_OperatorCode]
    currency: _Currency
    tax_included: bool
    lines: Annotated[list[_Line], Field(min_length=1, max_length=MAX_LINES)]
    taxes: Annotated[list[_Tax], Field(max_length=MAX_LINES)]
    payments: Annotated[list[_Payment], Field(max_length=MAX_PAYMENTS)]
    total: _Money
    tax_total: _Money
    change: _Money


@with_config(_CLOSED)
class _SaleEnvelope(TypedDict):
    v: _Version
    id: _MessageIdText
    type: Literal["up.sale"]
    device_id: str  # must equal the topic's, which parse_topic checked
    seq: _Seq
    boot_id: _UuidText
    created_at: _Timestamp
    clock_trusted: bool
    correlation_id: NotRequired[_UuidText]
    body: _Sale


_SALE_ENVELOPE = TypeAdapter(_SaleEnvelope)

# Every key each object may have (NotRequired ones included).
_ENVELOPE_KEYS = frozenset(_SaleEnvelope.__annotations__)
_SALE_KEYS = frozenset(_Sale.__annotations__)
_LINE_KEYS = frozenset(_Line.__annotations__)
_TAX_KEYS = frozenset(_Tax.__annotations__)
_PAYMENT_KEYS = frozenset(_Payment.__annotations__)
_CASH = kc.PaymentMethod.CASH.value
_SALE = kc.MessageType.SALE
_SALE_LIMIT = kc.payload_limit(_SALE)
_BODY_KEY = b'"body":'
_OTHER_KEYS = [f'"{key}":'.encode() for key in sorted(_ENVELOPE_KEYS) if key != "body"]

_topics: dict[str, kc.TopicInfo | kc.Rejection] = {}
_TOPIC_CACHE_MAX = 50_000
_boot_ids: dict[str, uuid.UUID] = {}
_BOOT_CACHE_MAX = 50_000


# ----------------------------------------------------------------------------- parsing
def parse(topic: str, payload: bytes) -> kc.Parsed | kc.Rejection | Up:
    """A received message: an `Up` when the fast path proved it a valid sale, otherwise
    whatever `kc.parse_message` makes of it. Never raises."""
    try:
        checked = _check_sale(topic, payload)
    except Exception:
        checked = None
    if checked is not None:
        return checked
    return kc.parse_message(topic, payload)


def parse_batch(topic: str, payload: bytes) -> list[kc.Parsed | kc.Rejection | Up] | kc.Rejection:
    """The messages of an up/batch publish, each parsed as if it had come alone (a canonical
    sale by the fast path, anything else by the contract), or why the whole batch is refused.
    Never raises."""
    split = kc.split_batch(topic, payload)
    if isinstance(split, kc.Rejection):
        return split
    device_id, lines = split
    sale_topic = kc.up_topic(device_id, _SALE)
    messages: list[kc.Parsed | kc.Rejection | Up] = []
    for index, line in enumerate(lines):
        try:
            checked = _check_sale(sale_topic, line)
        except Exception:
            checked = None
        messages.append(checked if checked is not None else kc.parse_batch_line(device_id, line, index))
    return messages


def parse_up(topic: str, payload: bytes) -> kc.Parsed | kc.Rejection | Up:
    """`parse`, with every valid up message (fast path or not) as an `Up`."""
    parsed = parse(topic, payload)
    if isinstance(parsed, kc.Parsed) and parsed.type.is_up:
        return Up.of(parsed.envelope)
    return parsed


def _topic_info(topic: str) -> kc.TopicInfo | kc.Rejection:
    info = _topics.get(topic)
    if info is None:
        info = kc.parse_topic(topic)
        if len(_topics) >= _TOPIC_CACHE_MAX:
            _topics.clear()
        _topics[topic] = info
    return info


def _boot_id(text: str) -> uuid.UUID:
    value = _boot_ids.get(text)
    if value is None:
        value = uuid.UUID(text)
        if len(_boot_ids) >= _BOOT_CACHE_MAX:
            _boot_ids.clear()
        _boot_ids[text] = value
    return value


def _check_sale(topic: str, payload: bytes) -> Up | None:
    """The sale as an `Up` when the payload is certainly a valid, canonical up.sale; None
    when anything is unusual (the caller then asks the contract)."""
    if type(payload) is not bytes or len(payload) > _SALE_LIMIT or b"\\" in payload:
        return None  # no escapes: no surrogates, no control characters in any string
    info = _topic_info(topic)
    if type(info) is not kc.TopicInfo or info.message_type is not _SALE:
        return None
    try:
        envelope = _SALE_ENVELOPE.validate_json(payload, strict=True)
    except ValidationError:  # not UTF-8, not JSON, or not canonical: the contract's turn
        return None
    sale = envelope["body"]
    if envelope["device_id"] != info.device_id or not _amounts_add_up(sale):
        return None
    try:
        stamp = datetime.fromisoformat(envelope["created_at"])  # a real date and time?
    except ValueError:
        return None
    if stamp.tzinfo is not UTC:
        return None
    correlation_id = envelope.get("correlation_id")
    return Up(
        uuid.UUID(envelope["id"]),
        _SALE,
        info.device_id,
        envelope["seq"],
        _boot_id(envelope["boot_id"]),
        stamp,
        envelope["clock_trusted"],
        None if correlation_id is None else uuid.UUID(correlation_id),
        None,
        cast(dict[str, Any], sale),  # a TypedDict is a plain dict: the wire form, as `Up.wire` holds it
        _body_text(payload, envelope, sale),
    )


def _amounts_add_up(sale: _Sale) -> bool:
    """`SaleLine._total_is_gross_less_discount`, `_check_taxes` and `Sale._amounts_add_up`."""
    base_by_rate: dict[int, int] = {}
    lines_total = 0
    for line in sale["lines"]:
        gross = (line["unit_price"] * line["qty_milli"] + 500) // 1000  # kc.line_gross
        discount, total = line["discount"], line["total"]
        if discount > gross or total != gross - discount:
            return False
        rate = line["tax_rate_bp"]
        base_by_rate[rate] = base_by_rate.get(rate, 0) + total
        lines_total += total
    tax_included = sale["tax_included"]
    taxes_total = 0
    rates: set[int] = set()
    for tax in sale["taxes"]:
        rate, base, amount = tax["rate_bp"], tax["base"], tax["tax"]
        if rate in rates or base != base_by_rate.get(rate) or (tax_included and amount > base):
            return False
        rates.add(rate)
        taxes_total += amount
    if len(rates) != len(base_by_rate) or sale["tax_total"] != taxes_total:
        return False
    total = sale["total"]
    if total != (lines_total if tax_included else lines_total + taxes_total):
        return False
    paid = cash = 0
    for payment in sale["payments"]:
        paid += payment["amount"]
        if payment["method"] == _CASH:
            cash += payment["amount"]
    change = sale["change"]
    return paid - change == total and change <= cash


def _body_text(payload: bytes, envelope: _SaleEnvelope, sale: _Sale) -> str | None:
    """The body's own JSON text when it is certainly the same document as `sale`.

    With no backslash in the payload every `"` delimits a string, so `":` occurs exactly
    where a key is directly followed by its colon: as many as there are keys in the parsed
    document means no key is repeated (JSON keeps the last copy, a reader of the text perhaps
    the first). When every other envelope key comes before `"body":`, the body's text runs
    from there to the final `}`.
    """
    if payload[-1:] != b"}":
        return None
    keys = len(envelope) + len(sale) + len(_LINE_KEYS) * len(sale["lines"])
    keys += len(_TAX_KEYS) * len(sale["taxes"]) + sum(len(p) for p in sale["payments"])
    if payload.count(b'":') != keys:
        return None
    start = payload.find(_BODY_KEY)
    if any(payload.find(key) > start for key in _OTHER_KEYS):
        return None
    return payload[start + len(_BODY_KEY) : -1].decode("utf-8")
