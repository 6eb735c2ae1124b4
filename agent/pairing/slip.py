"""The slip a technician prints to read the pairing code away from the screen (`kassactl pairing --print`)."""

from __future__ import annotations

from datetime import datetime

from drivers import Receipt, ReceiptBuilder


def pairing_slip(device_id: str, shown_code: str, expires_at: datetime | None) -> Receipt:
    builder = (
        ReceiptBuilder()
        .text("kassa pairing", bold=True, width=2, height=2, align="center")
        .feed(1)
        .columns("device", device_id)
        .rule()
        .text("pairing code", align="center")
        .text(shown_code, bold=True, width=2, height=2, align="center")
        .rule()
        .text("A company admin enters this code to claim the terminal into a point of sale.")
    )
    if expires_at is not None:
        builder = builder.columns("valid until", expires_at.strftime("%Y-%m-%d %H:%M UTC"))
    return builder.cut().build()
