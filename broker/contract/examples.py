"""Valid example messages, and the tool that writes them into docs/protocol.md.

The examples in the protocol document are generated here from the models, so they always
parse. Regenerate after changing a schema:

    python -m broker.contract.examples docs/protocol.md          # rewrite in place
    python -m broker.contract.examples --check docs/protocol.md  # exit 1 if stale

A block in the document is delimited by `<!-- example: NAME -->` and `<!-- /example -->`.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .codes import check_character
from .envelope import Body, Envelope, down_message, encode, status_message, up_message
from .licence import LeaseClaims, ReleaseClaims, sign_lease, sign_release
from .messages import (
    Ack,
    AckRejection,
    BindRequest,
    Command,
    CommandName,
    DeviceState,
    ErrorInfo,
    Event,
    HeldLease,
    LeaseReport,
    LicenceKind,
    Peripheral,
    PeripheralKind,
    Presence,
    ReleaseReceipt,
    Reply,
    StateDoc,
    Tombstone,
)
from .roster import CashierDetails, CashierRole, RosterCashier, RosterDoc, hash_pin
from .sales import (
    Payment,
    PaymentMethod,
    PaymentTotal,
    Refund,
    RefundLine,
    RefundScope,
    Sale,
    SaleLine,
    TaxLine,
    ZReport,
)
from .signing import public_key_fingerprint, public_key_text
from .topics import StateDomain
from .uuid7 import make_uuid7

__all__ = ["Example", "examples", "main", "render_example", "update_document"]

DEVICE_ID = "till-0042"
BOOT_ID = uuid.UUID("5f0c6d2e-8a41-4c7b-9e53-2d7f1a6b9c01")
_START = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
# A fixed, published key for examples only: Ed25519 signatures are deterministic, so the
# example tokens are identical on every run.
_EXAMPLE_DEVICE_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
_EXAMPLE_CLOUD_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32, 64)))
_EXAMPLE_LICENCE_KEY = "7KQ2M9XDT4HB8WZ" + check_character("7KQ2M9XDT4HB8WZ")
_BLOCK_RE = re.compile(r"<!-- example: ([\w.]+) -->\n.*?<!-- /example -->", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Example:
    name: str
    envelope: Envelope


def _at(seconds: float) -> datetime:
    return _START + timedelta(seconds=seconds)


def _id(n: int, seconds: float = 0) -> uuid.UUID:
    """A readable, valid UUIDv7 for the examples: made at `seconds`, ending in `n`."""
    return make_uuid7(int(_at(seconds).timestamp() * 1000), random_bits=n)


SALE_ID = uuid.UUID("0b3c8f52-1f6a-4e0e-9d4a-6c2b7e915a10")
TILL_SESSION_ID = uuid.UUID("7d9e2a61-3b4c-4f5d-8e6f-9a0b1c2d3e4f")
PING_ID = _id(0x50, 120)
RELEASE_ID = _id(0x51, 180)


def _sale() -> Sale:
    return Sale(
        sale_id=SALE_ID,
        receipt_no=1187,
        cashier_id="C-0107",
        point_of_sale_id="POS-MAIN",
        till_session_id=TILL_SESSION_ID,
        terminal_id="T-5531",
        operator_code="4821",
        currency="EUR",
        tax_included=True,
        lines=[
            SaleLine(sku="4006381333931", name="Espresso", qty_milli=2000, unit_price=250, tax_rate_bp=700, total=500),
            SaleLine(
                sku="PLU-4131",
                name="Apples, per kg",
                qty_milli=1250,
                unit_price=299,
                tax_rate_bp=700,
                discount=24,
                total=350,
            ),
            SaleLine(
                sku="9780201633610", name="Notebook A5", qty_milli=1000, unit_price=1190, tax_rate_bp=1900, total=1190
            ),
        ],
        taxes=[TaxLine(rate_bp=700, base=850, tax=56), TaxLine(rate_bp=1900, base=1190, tax=190)],
        payments=[
            Payment(method=PaymentMethod.CARD, amount=1000, reference="A1B2C3"),
            Payment(method=PaymentMethod.CASH, amount=1100),
        ],
        total=2040,
        tax_total=246,
        change=60,
    )


def _refund() -> Refund:
    return Refund(
        refund_id=uuid.UUID("c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f"),
        original_sale_id=SALE_ID,
        original_device_id=DEVICE_ID,
        scope=RefundScope.LINES,
        lines=[RefundLine(line_index=2, qty_milli=1000, amount=1190)],
        currency="EUR",
        amount=1190,
        payments=[Payment(method=PaymentMethod.CASH, amount=1190)],
        cashier_id="C-0107",
        till_session_id=TILL_SESSION_ID,
        reason="Customer returned the notebook unopened",
        receipt_no=1188,
        terminal_id="T-5531",
        operator_code="4821",
    )


def _z_report() -> ZReport:
    """The Z closing the period of the example sale and refund."""
    return ZReport(
        report_id=uuid.UUID("3e8a4c1d-6b2f-4d7e-9a05-1c2d3e4f5a6b"),
        z_no=214,
        currency="EUR",
        opened_at=_at(-3600),
        closed_at=_at(600),
        closed_by="C-0107",
        first_receipt_no=1187,
        last_receipt_no=1188,
        sales_count=1,
        refunds_count=1,
        sales_total=2040,
        refunds_total=1190,
        tax_total=246 - 190,
        payments=[
            PaymentTotal(method=PaymentMethod.CASH, taken=1040, paid_out=1190),
            PaymentTotal(method=PaymentMethod.CARD, taken=1000, paid_out=0),
        ],
        taxes=[TaxLine(rate_bp=700, base=850, tax=56), TaxLine(rate_bp=1900, base=0, tax=0)],
    )


def _device_key_fingerprint() -> str:
    return public_key_fingerprint(_EXAMPLE_DEVICE_KEY.public_key())


def _receipt_token() -> str:
    """The device's release receipt for LIC-7F3K-22QX epoch 3 (kind licence.release, kid device)."""
    claims = ReleaseClaims(
        licence_id="LIC-7F3K-22QX",
        device_id=DEVICE_ID,
        device_key=_device_key_fingerprint(),
        epoch=3,
        released_at=int(_at(181).timestamp()),
    )
    return sign_release(claims, _EXAMPLE_DEVICE_KEY)


def _lease_token() -> str:
    """A 7-day lease of LIC-9A1B-77KD for this device (kind licence.lease, signed by cloud key cloud-2025)."""
    claims = LeaseClaims(
        licence_id="LIC-9A1B-77KD",
        company_id=17,
        device_id=DEVICE_ID,
        device_key=_device_key_fingerprint(),
        epoch=1,
        entitlements={"tills": 1},
        issued_at=int(_at(0).timestamp()),
        expires_at=int(_at(604800).timestamp()),
        renew_after_s=3600,
    )
    return sign_lease(claims, _EXAMPLE_CLOUD_KEY, "cloud-2025")


def _up(name: str, n: int, seconds: float, body: Body, **extra: Any) -> Example:
    envelope = up_message(
        body,
        device_id=DEVICE_ID,
        seq=n,
        boot_id=BOOT_ID,
        clock_trusted=True,
        created_at=_at(seconds),
        message_id=_id(n, seconds),
        **extra,
    )
    return Example(name, envelope)


def _down(name: str, message_id: uuid.UUID, seconds: float, body: Body) -> Example:
    envelope = down_message(body, device_id=DEVICE_ID, created_at=_at(seconds), message_id=message_id)
    return Example(name, envelope)


@functools.lru_cache(maxsize=1)
def _example_pin_hash() -> str:
    """The hash of PIN 4711 with a fixed salt: one scrypt run (~130 ms), the same text every time."""
    return hash_pin("4711", salt=b"kassa-example-01")


def _roster() -> dict[str, Any]:
    """A `cashiers` document: one cashier in two airline sessions, its own code in both."""
    details = [
        CashierDetails(
            point_of_sale="POS-AIRPORT", terminal_id="SU-5531", operator_code="4821", session_label="Aeroflot SU direct"
        ),
        CashierDetails(point_of_sale="POS-MAIN", terminal_id="T-5531", operator_code="4821"),
    ]
    cashier = RosterCashier(
        cashier_id="C-0107",
        name="Dana Ito",
        operator_code="4821",
        pin_hash=_example_pin_hash(),
        roles=[CashierRole.CASHIER, CashierRole.REFUND],
        details=details,
    )
    return RosterDoc(cashiers=[cashier]).model_dump(mode="json")


def examples() -> list[Example]:
    """One or more valid messages of every type, fixed so the document stays stable."""
    receipt = _receipt_token()
    return [
        _up("up.sale", 41, 0, _sale()),
        _up("up.refund", 42, 60, _refund()),
        _up("up.z_report", 51, 600, _z_report()),
        _up(
            "up.licence.lease_report",
            43,
            61,
            LeaseReport(
                kind=LicenceKind.LEASE_REPORT,
                leases=[HeldLease(licence_id="LIC-9A1B-77KD", epoch=1, lease_expires_at=_at(604800))],
                tombstones=[Tombstone(licence_id="LIC-7F3K-22QX", epoch=3, receipt=receipt)],
            ),
        ),
        _up(
            "up.licence.release_receipt",
            46,
            181,
            ReleaseReceipt(kind=LicenceKind.RELEASE_RECEIPT, licence_id="LIC-7F3K-22QX", epoch=3, receipt=receipt),
            correlation_id=RELEASE_ID,
        ),
        _up(
            "up.licence.bind_request",
            47,
            200,
            BindRequest(
                kind=LicenceKind.BIND_REQUEST,
                licence_key=_EXAMPLE_LICENCE_KEY,
                device_public_key=public_key_text(_EXAMPLE_DEVICE_KEY.public_key()),
            ),
        ),
        _up(
            "up.state",
            44,
            62,
            DeviceState(
                software_version="0.1.0",
                applied_versions={StateDomain.CASHIERS: 12, StateDomain.CONFIG: 4},
                outbox_depth=2,
                oldest_unacked_seq=41,
                hardware=[
                    Peripheral(kind=PeripheralKind.PRINTER, model="Epson TM-T20III", status="paper_near_end"),
                    Peripheral(kind=PeripheralKind.SCANNER, model="Honeywell 1900g", status="ok"),
                ],
            ),
        ),
        _up("up.reply.ok", 45, 121, Reply(ok=True, result={"pong": True}), correlation_id=PING_ID),
        _up(
            "up.reply.licence_release", 50, 182, Reply(ok=True, result={"receipt": receipt}), correlation_id=RELEASE_ID
        ),
        _up(
            "up.reply.error",
            48,
            240,
            Reply(ok=False, error=ErrorInfo(code="unknown_command", message="no handler for 'printer.selftest'")),
            correlation_id=_id(0x52, 239),
        ),
        _up(
            "up.event",
            49,
            300,
            Event(kind="cashier.lockout", cashier_id="C-0107", details={"failed_attempts": 5, "locked_for_s": 300}),
        ),
        _down(
            "down.ack",
            _id(0x60, 2),
            2,
            Ack(
                acked_ids=[_id(41, 0), _id(42, 60)],
                high_water=42,
                rejected=[
                    AckRejection(
                        id=_id(40, -30),
                        reason="sale.receipt_no_reused",
                        detail="receipt 1186 is already recorded for another sale",
                    )
                ],
            ),
        ),
        _down(
            "down.state.cashiers",
            _id(0x61, 30),
            30,
            StateDoc(domain=StateDomain.CASHIERS, version=13, issued_at=_at(30), doc=_roster()),
        ),
        _down(
            "down.state.config",
            _id(0x62, 31),
            31,
            StateDoc(
                domain=StateDomain.CONFIG,
                version=5,
                issued_at=_at(31),
                doc={"language": "en", "points_of_sale": ["POS-MAIN"], "receipt_footer": "Thank you"},
            ),
        ),
        _down(
            "down.state.licence",
            _id(0x63, 32),
            32,
            StateDoc(domain=StateDomain.LICENCE, version=7, issued_at=_at(32), doc={"leases": [_lease_token()]}),
        ),
        _down("down.cmd", PING_ID, 120, Command(name=CommandName.PING)),
        _down(
            "down.cmd.licence_release",
            RELEASE_ID,
            180,
            Command(
                name=CommandName.LICENCE_RELEASE,
                args={"licence_id": "LIC-7F3K-22QX", "epoch": 3},
                expires_at=_at(180 + 86400),
            ),
        ),
        Example(
            "status.online",
            status_message(
                Presence.ONLINE,
                device_id=DEVICE_ID,
                boot_id=BOOT_ID,
                clock_trusted=True,
                created_at=_at(-5),
                message_id=_id(0x70, -5),
            ),
        ),
        Example(
            "status.offline",
            status_message(
                Presence.OFFLINE,
                device_id=DEVICE_ID,
                boot_id=BOOT_ID,
                clock_trusted=True,
                created_at=_at(-5),
                message_id=_id(0x71, -5),
            ),
        ),
    ]


def _pretty(value: object, indent: int = 0, width: int = 92) -> str:
    """JSON with small objects and lists kept on one line, for a readable document."""
    flat = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    if indent + len(flat) <= width or not isinstance(value, (dict, list)) or not value:
        return flat
    pad = " " * (indent + 2)
    if isinstance(value, dict):
        items = []
        for key, item in value.items():
            label = f"{json.dumps(key)}: "
            items.append(pad + label + _pretty(item, indent + 2, width - len(label)))
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    items = [pad + _pretty(v, indent + 2, width) for v in value]
    return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"


def render_example(example: Example) -> str:
    """The marked block for one example: its topic and its payload, pretty-printed."""
    pretty = _pretty(json.loads(encode(example.envelope)))
    return (
        f"<!-- example: {example.name} -->\n"
        f"Topic: `{example.envelope.topic}`\n\n```json\n{pretty}\n```\n<!-- /example -->"
    )


def update_document(text: str) -> str:
    """Replace every marked example block in `text` with a freshly rendered one."""
    by_name = {example.name: example for example in examples()}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in by_name:
            raise KeyError(f"the document names an unknown example {name!r}")
        return render_example(by_name[name])

    return _BLOCK_RE.sub(replace, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("document", type=Path)
    parser.add_argument("--check", action="store_true", help="exit 1 if the document is stale")
    args = parser.parse_args(argv)
    current = args.document.read_text(encoding="utf-8")
    updated = update_document(current)
    if args.check:
        if updated != current:
            print(f"{args.document}: examples are stale; regenerate them", file=sys.stderr)
            return 1
        return 0
    args.document.write_text(updated, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
