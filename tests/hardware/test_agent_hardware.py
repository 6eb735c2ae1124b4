"""The agent drives simulated hardware: durable print queue, drawer, scanner, device config."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import wiring
from agent.store import Store
from drivers.sim.printer import VirtualPrinter
from drivers.sim.scanner import VirtualSerialScanner
from tests.support.agent_process import REPO_ROOT, write_agent_config
from tests.support.hardware import hardware_section
from tests.support.inprocess import InProcessAgent


def hardware_config(directory: Path, printer: VirtualPrinter, scanner: VirtualSerialScanner | None = None) -> Path:
    scanner_url = f"serial://{scanner.path}?suffix=%0D" if scanner is not None else None
    extra = hardware_section(printer.url, scanner_url=scanner_url)
    return write_agent_config(directory, extra=extra)


@pytest.fixture
def printer(tmp_path: Path) -> Iterator[VirtualPrinter]:
    sim = VirtualPrinter(preview_dir=tmp_path / "previews").start()
    yield sim
    sim.stop()


@pytest.fixture
def agent(tmp_path: Path, printer: VirtualPrinter) -> Iterator[InProcessAgent]:
    running = InProcessAgent(hardware_config(tmp_path / "agent", printer)).start()
    yield running
    running.stop()


def job_state(agent: InProcessAgent, job_id: str) -> str:
    job = agent.agent.component(wiring.HARDWARE).queue.get(job_id)
    return job.state


def test_paper_out_keeps_the_job_and_prints_it_once_when_paper_returns(
    agent: InProcessAgent, printer: VirtualPrinter
) -> None:
    printer.set_paper("out")
    hardware = agent.agent.component(wiring.HARDWARE)
    job_id = agent.call(lambda: hardware.test_print())
    agent.wait_until(lambda: hardware.queue.get(job_id).last_error is not None, 10, "first attempt refused")
    job = hardware.queue.get(job_id)
    assert job.state == "queued" and "paper" in job.last_error
    assert printer.receipts == []
    assert agent.cloud.status()  # the rest of the agent is unaffected
    printer.set_paper("ok")
    agent.wait_until(lambda: job_state(agent, job_id) == "printed", 10, "printed after paper returned")
    receipts = printer.wait_for_receipts(1)
    time.sleep(0.6)  # several poll intervals: a second copy would show up by now
    assert len(printer.receipts) == 1
    assert "kassa test print" in receipts[0].text
    assert receipts[0].png_path is not None and receipts[0].png_path.exists()


def test_queued_job_survives_a_restart(tmp_path: Path, printer: VirtualPrinter) -> None:
    config = hardware_config(tmp_path / "agent", printer)
    printer.go_offline("refuse")
    first = InProcessAgent(config).start()
    hardware = first.agent.component(wiring.HARDWARE)
    job_id = first.call(lambda: hardware.test_print())
    first.wait_until(lambda: hardware.queue.get(job_id).attempts >= 1, 10, "an attempt")
    first.stop()
    assert printer.receipts == []
    printer.go_online()
    second = InProcessAgent(config).start()
    try:
        second.wait_until(lambda: job_state(second, job_id) == "printed", 15, "printed by the next boot")
        assert len(printer.wait_for_receipts(1)) == 1
    finally:
        second.stop()


def test_job_interrupted_by_a_crash_is_printed_again_as_a_copy(tmp_path: Path, printer: VirtualPrinter) -> None:
    config = hardware_config(tmp_path / "agent", printer)
    first = InProcessAgent(config).start()
    hardware = first.agent.component(wiring.HARDWARE)
    printer.go_offline("refuse")
    job_id = first.call(lambda: hardware.test_print())
    first.wait_until(lambda: hardware.queue.get(job_id).attempts >= 1, 10, "an attempt")
    first.stop()
    # what a power cut in the middle of a job leaves behind
    with Store.open(tmp_path / "agent" / "state" / "agent.db") as store, store.transaction() as conn:
        conn.execute("UPDATE print_jobs SET state = 'printing' WHERE job_id = ?", (job_id,))
    printer.go_online()
    second = InProcessAgent(config).start()
    try:
        receipts = printer.wait_for_receipts(1, timeout=15)
        assert "*** COPY ***" in receipts[0].text
        jobs = second.agent.component(wiring.HARDWARE).queue.recent()
        original = next(j for j in jobs if j.job_id == job_id)
        assert original.state == "failed" and "interrupted" in original.last_error
        assert any(j.copy_of == job_id for j in jobs)
    finally:
        second.stop()


def test_reprint_is_marked_as_a_copy(agent: InProcessAgent, printer: VirtualPrinter) -> None:
    hardware = agent.agent.component(wiring.HARDWARE)
    job_id = agent.call(lambda: hardware.test_print())
    agent.wait_until(lambda: job_state(agent, job_id) == "printed", 10, "printed")
    copy_id = agent.call(lambda: hardware.queue.reprint(job_id))
    agent.wait_until(lambda: job_state(agent, copy_id) == "printed", 10, "copy printed")
    first, second = printer.wait_for_receipts(2)
    assert "*** COPY ***" not in first.text and "*** COPY ***" in second.text


def test_drawer_opens_through_the_printer(agent: InProcessAgent, printer: VirtualPrinter) -> None:
    hardware = agent.agent.component(wiring.HARDWARE)
    future = asyncio.run_coroutine_threadsafe(hardware.open_drawer("cash"), agent._loop)  # type: ignore[arg-type]
    state = future.result(10)
    assert printer.drawer.wait_for_kicks(1, 5)
    assert state == "open"


def test_scans_reach_the_event_bus(tmp_path: Path, printer: VirtualPrinter) -> None:
    scanner = VirtualSerialScanner().start()
    running = InProcessAgent(hardware_config(tmp_path / "agent", printer, scanner)).start()
    try:
        subscription = running.call(lambda: running.agent.events.subscribe({"scan"}))
        scanner.scan(b"4006381333931\r")
        scanner.scan(b"4006381333932\r")  # bad check digit: delivered, flagged
        first = asyncio.run_coroutine_threadsafe(subscription.next(10), running._loop).result(15)  # type: ignore[arg-type]
        second = asyncio.run_coroutine_threadsafe(subscription.next(10), running._loop).result(15)  # type: ignore[arg-type]
        assert (first.data["data"], first.data["symbology"], first.data["valid"]) == ("4006381333931", "ean13", True)
        assert (second.data["data"], second.data["valid"]) == ("4006381333932", False)
        assert first.data["scanner"] == "hand"
    finally:
        running.stop()
        scanner.stop()


def test_rejected_input_is_a_scan_rejected_event_and_the_next_code_a_scan(
    tmp_path: Path, printer: VirtualPrinter
) -> None:
    scanner = VirtualSerialScanner().start()
    running = InProcessAgent(hardware_config(tmp_path / "agent", printer, scanner)).start()
    try:
        subscription = running.call(lambda: running.agent.events.subscribe({"scan", "scan.rejected"}))
        scanner.send_raw(b"\x1b[31m" + b"9" * 5000 + b"\r")  # longer than the default max_length (4096)
        scanner.send_raw(b"\x89PNG\x00\x1a\r")  # binary: not UTF-8
        scanner.scan(b"4006381333931\r")
        received = [
            asyncio.run_coroutine_threadsafe(subscription.next(10), running._loop).result(15)  # type: ignore[arg-type]
            for _ in range(3)
        ]
        assert [(e.kind, e.data.get("reason")) for e in received] == [
            ("scan.rejected", "too_long"),
            ("scan.rejected", "not_text"),
            ("scan", None),
        ]
        too_long = received[0].data
        assert too_long["scanner"] == "hand" and too_long["length"] == 5005 and "max_length" in too_long["message"]
        assert received[2].data["data"] == "4006381333931"
        status = running.call(running.agent.component(wiring.HARDWARE).status)
        assert (status["scans"], status["scans_rejected"]) == (1, 2)
    finally:
        running.stop()
        scanner.stop()


def test_bad_device_config_stops_startup_with_exit_78(tmp_path: Path) -> None:
    config = write_agent_config(
        tmp_path / "agent", extra='[[printers]]\nname = "front"\nurl = "carrier-pigeon://coop"\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "agent.main", "-c", str(config)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 78
    assert "printer 'front'" in result.stderr


def test_drawer_on_an_unknown_printer_is_a_config_error(tmp_path: Path) -> None:
    config = write_agent_config(tmp_path / "agent", extra='[[drawers]]\nname = "cash"\nprinter = "nope"\n')
    result = subprocess.run(
        [sys.executable, "-m", "agent.main", "--check-config", "-c", str(config)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 78
    assert "printer 'nope', which is not configured" in result.stderr


def test_kassactl_devices_and_test_print(tmp_path: Path, printer: VirtualPrinter) -> None:
    from tests.support.agent_process import AgentProcess

    agent = AgentProcess(hardware_config(tmp_path / "agent", printer)).start()
    try:

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "agent.ctl", "--socket", str(agent.socket_path), *args],
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
                timeout=60,
            )

        job = agent.client().call("print.test")
        assert len(printer.wait_for_receipts(1, timeout=10)) == 1
        jobs = agent.client().call("print.jobs")
        assert jobs[0]["job_id"] == job["job_id"]
        deadline = time.monotonic() + 10
        while agent.client().call("devices")["printers"]["front"]["status"] != "ready" and time.monotonic() < deadline:
            time.sleep(0.1)
        devices = json.loads(run("--json", "methods").stdout)
        assert {"print.test", "drawer.open", "devices"} <= {m["name"] for m in devices}
        status = run("status")
        assert "front ready" in status.stdout
        assert agent.stop() == 0
    finally:
        agent.kill()
