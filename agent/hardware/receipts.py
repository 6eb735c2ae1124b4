"""Documents the agent prints on its own (the sale receipt template lives with sales)."""

from __future__ import annotations

import time

from drivers import Receipt, ReceiptBuilder


def test_page(device_id: str, printer: str, host: str, at: float) -> Receipt:
    """What a technician prints to check a printer: who printed, where, when, and every feature."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))
    return (
        ReceiptBuilder()
        .text("kassa test print", bold=True, width=2, height=2, align="center")
        .feed(1)
        .columns("device", device_id)
        .columns("printer", printer)
        .columns("host", host)
        .columns("time", stamp)
        .rule()
        .text("Normal, ", align="left")
        .text("bold", bold=True)
        .text("underlined", underline=1)
        .text("ÄÖÜ äöü ß é è ñ €")
        .rule()
        .barcode("4006381333931", "EAN13")
        .qr(f"kassa:test:{device_id}:{printer}:{int(at)}")
        .cut()
        .build()
    )
