"""The agent loads python-escpos's printer classes, Pillow and qrcode only when a job needs them."""

from __future__ import annotations

import subprocess
import sys

from drivers.capabilities import capabilities

HEAVY = ("PIL", "qrcode", "barcode", "yaml", "escpos.printer", "escpos.escpos", "escpos.capabilities")


def test_capability_data_is_what_python_escpos_loads() -> None:
    from escpos.capabilities import CAPABILITIES

    assert capabilities() == CAPABILITIES


def test_agent_and_profiles_without_printer_classes_pillow_or_qrcode() -> None:
    script = (
        "import sys, agent.daemon, drivers\n"
        "from drivers import ReceiptBuilder, load_profile\n"
        "profile = load_profile('TM-T88V')\n"
        "ReceiptBuilder().text('Grüße').build()\n"
        f"print([m for m in sys.modules if m.startswith({HEAVY!r})])\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
