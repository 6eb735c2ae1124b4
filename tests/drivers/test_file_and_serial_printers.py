"""Printers behind a device file (/dev/usb/lp*-style) or a serial port, exercised on pseudo-terminals."""

from __future__ import annotations

import os
import select
import threading
import tty

import pytest

from drivers import DeviceStatus, PaperOutError, PrinterStatusUnknownError, ReceiptBuilder, open_printer
from drivers.sim.printer_core import Paper, VirtualPrinterCore

from .conftest import sample_receipt


class PtyPrinter:
    """A virtual printer on the far side of a pty: the near side looks like a character device."""

    def __init__(self) -> None:
        self.core = VirtualPrinterCore("TM-T88V")
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        stream = self.core.open_stream()
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self.master, 65536)
            except OSError:
                continue
            answers = stream.feed(data)
            if answers:
                os.write(self.master, answers)

    def __enter__(self) -> PtyPrinter:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(2)
        os.close(self.master)
        os.close(self.slave)


def test_device_file_printer_answers_status_and_prints():
    with PtyPrinter() as sim:
        printer = open_printer(f"file://{sim.path}")
        assert printer.transport.bidirectional
        assert printer.status().status is DeviceStatus.READY
        printer.print_document(sample_receipt(), job_id="lp-1")
        assert "TOTAL CHF" in sim.core.wait_for_receipts(1, timeout=3)[0].text
        sim.core.sensors.paper = Paper.OUT
        with pytest.raises(PaperOutError):
            printer.print_document(sample_receipt(), job_id="lp-2")
        printer.close()


def test_serial_printer_on_a_pty():
    with PtyPrinter() as sim:
        printer = open_printer(f"serial://{sim.path}?baudrate=19200&flow=none&write_timeout=2")
        assert printer.status().status is DeviceStatus.READY
        printer.print_document(ReceiptBuilder().text("serial receipt").cut().build(), job_id="ser-1")
        assert "serial receipt" in sim.core.wait_for_receipts(1, timeout=3)[0].text
        printer.close()


def test_plain_file_captures_jobs_and_reports_unknown_status(tmp_path):
    target = tmp_path / "capture.bin"
    printer = open_printer(f"file://{target}")
    status = printer.status()
    assert status.status is DeviceStatus.UNKNOWN and "cannot report status" in status.details[0]
    result = printer.print_document(ReceiptBuilder().text("to a file").build(), job_id="file-1")
    assert result.status_before is None and result.status_after is None
    printer.print_document(ReceiptBuilder().text("appended").build(), job_id="file-2")
    assert target.read_bytes() == (b"\x1b@\x1bt\x00to a file\n" + b"\x1b@\x1bt\x00appended\n")


def test_plain_file_with_status_check_always_refuses_to_print_blind(tmp_path):
    printer = open_printer({"url": f"file://{tmp_path / 'x.bin'}", "status_check": "always"})
    with pytest.raises(PrinterStatusUnknownError):
        printer.print_document(ReceiptBuilder().text("x").build(), job_id="blind")
