"""Render a 30-line receipt with a QR code to ESC/POS: kassa vs python-escpos ``Dummy``.

Run: ``python -m bench.bench_render [--runs N]``. Both sides render the same
receipts (every iteration gets different item names and prices, so no cache
sees the same line twice in a row) and must produce identical bytes; the
check is done before timing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from escpos.constants import QR_ECLEVEL_M
from escpos.printer import Dummy

from drivers import Columns, Cut, QrCode, Receipt, Rule, Style, Text, load_profile
from drivers.receipt.escpos import EscposRenderer

PROFILE = "TM-T88V"
ITEMS = (
    "Espresso",
    "Cappuccino",
    "Croissant",
    "Orange juice",
    "Bagel with cream cheese",
    "Mineral water",
    "Chocolate muffin",
    "Green tea",
    "Club sandwich",
    "Apple pie",
    "Latte macchiato",
    "Brownie",
)
BOLD, CENTER_BOLD_BIG = Style(bold=True), Style(bold=True, width=2, height=2, align="center")
CENTER = Style(align="center")
VARIANTS = 64


def receipt_lines(variant: int) -> list[tuple[str, str]]:
    items = []
    for i in range(20):
        name = ITEMS[(i + variant) % len(ITEMS)]
        cents = 150 + (i * 37 + variant * 11) % 900
        items.append((f"{1 + (i + variant) % 3} x {name}", f"{cents // 100}.{cents % 100:02d}"))
    return items


def kassa_document(variant: int) -> Receipt:
    items = receipt_lines(variant)
    total = sum(int(price.replace(".", "")) for _, price in items)
    blocks = [
        Text("KASSA CAFE", CENTER_BOLD_BIG),
        Text("Main Street 1, 8000 Zurich", CENTER),
        Text(f"Receipt 2024-{variant:05d}", CENTER),
        Rule(),
    ]
    blocks += [Columns(item) for item in items]
    blocks += [
        Rule(),
        Columns(("TOTAL", f"{total // 100}.{total % 100:02d}"), style=BOLD),
        Columns(("Paid by card", f"{total // 100}.{total % 100:02d}")),
        Rule(),
        Text("Thank you for your visit!", CENTER),
        Text("VAT no. CHE-123.456.789", CENTER),
        QrCode(f"https://kassa.example/r/2024-{variant:05d}", size=6, error_correction="M"),
        Cut(),
    ]
    return Receipt(tuple(blocks))


def dummy_render(printer: Dummy, variant: int, width: int) -> bytes:
    """The same receipt through python-escpos calls."""
    printer.clear()
    printer.magic.encoding = None  # a fresh job: the code page is selected again, as kassa does
    items = receipt_lines(variant)
    total = sum(int(price.replace(".", "")) for _, price in items)
    money = f"{total // 100}.{total % 100:02d}"

    def row(left: str, right: str) -> str:
        return left + " " * (width - len(left) - len(right)) + right

    printer.hw("INIT")
    printer.set(custom_size=True, width=2, height=2, bold=True, align="center")
    printer.textln("KASSA CAFE")
    printer.set(custom_size=True, width=1, height=1, bold=False)
    printer.textln("Main Street 1, 8000 Zurich")
    printer.textln(f"Receipt 2024-{variant:05d}")
    printer.set(align="left")
    printer.textln("-" * width)
    for left, right in items:
        printer.textln(row(left, right))
    printer.textln("-" * width)
    printer.set(bold=True)
    printer.textln(row("TOTAL", money))
    printer.set(bold=False)
    printer.textln(row("Paid by card", money))
    printer.textln("-" * width)
    printer.set(align="center")
    printer.textln("Thank you for your visit!")
    printer.textln("VAT no. CHE-123.456.789")
    printer.qr(f"https://kassa.example/r/2024-{variant:05d}", ec=QR_ECLEVEL_M, size=6, native=True)
    printer.cut()
    return printer.output


def measure(render, runs: int) -> list[float]:
    timings = []
    for run in range(runs):
        started = time.perf_counter_ns()
        render(run % VARIANTS)
        timings.append((time.perf_counter_ns() - started) / 1e6)
    return timings


def summary(timings: list[float]) -> tuple[float, float]:
    ordered = sorted(timings)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3000)
    args = parser.parse_args(argv)

    profile = load_profile(PROFILE)
    width = profile.columns()
    renderer = EscposRenderer(profile)
    documents = [kassa_document(v) for v in range(VARIANTS)]
    dummy = Dummy(profile=PROFILE)

    for variant in range(VARIANTS):
        ours, theirs = renderer.render(documents[variant]), dummy_render(dummy, variant, width)
        if ours != theirs:
            print(f"bytes differ for variant {variant}: kassa {len(ours)} B, Dummy {len(theirs)} B")
            return 1
    lines = renderer.render(documents[0]).count(b"\n")

    # warm-up, then interleave-free timing of each side
    measure(lambda v: renderer.render(documents[v]), 200)
    measure(lambda v: dummy_render(dummy, v, width), 200)
    kassa = summary(measure(lambda v: renderer.render(documents[v]), args.runs))
    baseline = summary(measure(lambda v: dummy_render(dummy, v, width), args.runs))

    size = len(renderer.render(documents[0]))
    print(
        f"receipt: {lines} text lines + native QR, profile {PROFILE}, {size} bytes; "
        f"{args.runs} runs each; output identical to Dummy: yes"
    )
    print(f"{'renderer':<26}{'median ms':>12}{'p99 ms':>12}")
    print(f"{'kassa EscposRenderer':<26}{kassa[0]:>12.3f}{kassa[1]:>12.3f}")
    print(f"{'python-escpos Dummy':<26}{baseline[0]:>12.3f}{baseline[1]:>12.3f}")
    print(f"{'ratio (Dummy / kassa)':<26}{baseline[0] / kassa[0]:>12.1f}{baseline[1] / kassa[1]:>12.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
