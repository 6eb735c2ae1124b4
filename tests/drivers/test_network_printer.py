"""Printing over TCP to the virtual printer, and how its failures surface as typed errors."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from drivers import (
    CoverOpenError,
    DeviceStatus,
    PaperOutError,
    PrinterOfflineError,
    PrinterStatusUnknownError,
    PrinterUnavailableError,
    ReceiptBuilder,
    open_printer,
)
from drivers.sim.printer_core import Paper

from .conftest import SAMPLE_PROFILE, sample_receipt

ROOT = Path(__file__).resolve().parents[2]


def small_receipt(number: int):
    return (
        ReceiptBuilder()
        .text(f"Receipt {number}", bold=True, align="center")
        .columns("1 x Tea", "2.50")
        .columns("TOTAL", "2.50", bold=True)
        .cut()
        .build()
    )


def test_print_sample_receipt_gives_preview_png_and_text(virtual_printer):
    printer = open_printer(virtual_printer.url, profile=SAMPLE_PROFILE)
    result = printer.print_document(sample_receipt(), job_id="job-1")
    assert result.job_id == "job-1" and result.bytes_written > 1000
    assert result.status_before.status is DeviceStatus.READY
    assert result.status_after is not None and result.status_after.status is DeviceStatus.READY

    [receipt] = virtual_printer.wait_for_receipts(1)
    assert receipt.png_path.is_file() and receipt.txt_path.is_file()
    with Image.open(receipt.png_path) as image:
        assert image.width >= 512 and image.height > 300
    text = receipt.txt_path.read_text(encoding="utf-8")
    for line in (
        "KASSA CAFE",
        "Bahnhofstrasse 1, Zürich",
        "2 x Espresso",
        "TOTAL CHF",
        "15.70",
        "[QR: https://kassa.example/r/2024-000042]",
        "[EAN13: 4006381333931]",
    ):
        assert line in text
    assert "1 x Croissant                         3.20" in receipt.lines


def test_paper_out_raises_typed_error_then_prints_when_paper_is_back(virtual_printer):
    printer = open_printer(virtual_printer.url, status_timeout=0.3)
    virtual_printer.set_paper(Paper.OUT)
    assert printer.status().status is DeviceStatus.PAPER_OUT
    with pytest.raises(PaperOutError) as raised:
        printer.print_document(small_receipt(1), job_id="job-7")
    assert raised.value.job_id == "job-7"
    assert raised.value.reason is DeviceStatus.PAPER_OUT and raised.value.retryable
    assert virtual_printer.receipts == []

    virtual_printer.set_paper(Paper.OK)
    printer.print_document(small_receipt(1), job_id="job-7")  # the queue's retry
    [receipt] = virtual_printer.wait_for_receipts(1)
    assert "Receipt 1" in receipt.text


def test_paper_near_end_still_prints_and_is_reported(virtual_printer):
    printer = open_printer(virtual_printer.url)
    virtual_printer.set_paper(Paper.NEAR_END)
    result = printer.print_document(small_receipt(2), job_id="near-end")
    assert result.status_before.status is DeviceStatus.PAPER_NEAR_END
    assert virtual_printer.wait_for_receipts(1)


def test_cover_open_raises_cover_open_error(virtual_printer):
    printer = open_printer(virtual_printer.url)
    virtual_printer.set_cover(True)
    with pytest.raises(CoverOpenError):
        printer.print_document(small_receipt(3), job_id="cover")
    virtual_printer.set_cover(False)
    assert printer.status().status is DeviceStatus.READY


def test_a_printer_that_stops_answering_is_unknown_not_ready(virtual_printer):
    printer = open_printer(virtual_printer.url, status_timeout=0.2)
    virtual_printer.go_offline("silent")
    status = printer.status()
    assert status.status is DeviceStatus.UNKNOWN and not status.can_print
    with pytest.raises(PrinterStatusUnknownError):
        printer.print_document(small_receipt(4), job_id="silent")
    assert virtual_printer.receipts == []


def test_a_printer_that_refuses_connections_is_offline_and_comes_back(virtual_printer):
    printer = open_printer(virtual_printer.url, connect_timeout=0.5)
    virtual_printer.go_offline("refuse")
    assert printer.status().status is DeviceStatus.OFFLINE
    with pytest.raises(PrinterOfflineError):
        printer.print_document(small_receipt(5), job_id="refused")
    virtual_printer.go_online()
    printer.print_document(small_receipt(5), job_id="refused")
    assert "Receipt 5" in virtual_printer.wait_for_receipts(1)[0].text


def test_unprintable_states_all_share_the_retryable_base_class(virtual_printer):
    printer = open_printer(virtual_printer.url)
    virtual_printer.set_cutter_error(True)
    with pytest.raises(PrinterUnavailableError) as raised:
        printer.print_document(small_receipt(6), job_id="cutter")
    assert raised.value.reason is DeviceStatus.OFFLINE
    assert "autocutter error" in raised.value.status.details


def test_several_jobs_in_a_row_are_separate_receipts(virtual_printer):
    printer = open_printer(virtual_printer.url)
    for number in range(3):
        printer.print_document(small_receipt(number), job_id=f"job-{number}")
    receipts = virtual_printer.wait_for_receipts(3)
    assert [f"Receipt {n}" in r.text for n, r in enumerate(receipts)] == [True, True, True]


def test_virtual_printer_runs_as_a_subprocess(tmp_path):
    port_file, previews = tmp_path / "port", tmp_path / "previews"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "drivers.sim.printer",
            "--port",
            "0",
            "--port-file",
            str(port_file),
            "--preview-dir",
            str(previews),
            "--log-level",
            "WARNING",
        ],
        stdin=subprocess.PIPE,
        cwd=ROOT,
        env=env,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not (port_file.exists() and port_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        printer = open_printer(f"tcp://127.0.0.1:{port_file.read_text()}")
        printer.print_document(small_receipt(8), job_id="subprocess")
        process.stdin.write("paper out\n")
        process.stdin.flush()
        deadline = time.monotonic() + 5
        while printer.status().status is not DeviceStatus.PAPER_OUT and time.monotonic() < deadline:
            time.sleep(0.05)
        assert printer.status().status is DeviceStatus.PAPER_OUT
        process.stdin.write("quit\n")
        process.stdin.flush()
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert "Receipt 8" in (previews / "receipt-0001.txt").read_text(encoding="utf-8")
    assert (previews / "receipt-0001.png").stat().st_size > 0
