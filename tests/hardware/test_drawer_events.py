"""The drawer contract of docs/pos-api.md: "open"/"closed" states, a drawer pushed shut is
reported (`drawer.closed`), a failed opening (also a no-sale) is reported (`drawer.failed`)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent import wiring
from agent.sales.models import SalesRefused
from drivers.sim.drawer import VirtualSerialDrawer
from drivers.sim.printer import VirtualPrinter
from tests.agent.test_cashiers_support import DEVICE
from tests.agent.test_sales_support import start_till
from tests.support.agent_process import write_agent_config
from tests.support.hardware import hardware_section
from tests.support.inprocess import InProcessAgent
from tests.support.licence import trust_section


@pytest.fixture
def printer(tmp_path: Path) -> Iterator[VirtualPrinter]:
    sim = VirtualPrinter(preview_dir=tmp_path / "previews").start()
    yield sim
    sim.stop()


def start_agent(directory: Path, printer: VirtualPrinter, **hardware: Any) -> InProcessAgent:
    return InProcessAgent(write_agent_config(directory, extra=hardware_section(printer.url, **hardware))).start()


def run(agent: InProcessAgent, coroutine: Any, timeout_s: float = 20) -> Any:
    assert agent._loop is not None
    return asyncio.run_coroutine_threadsafe(coroutine, agent._loop).result(timeout_s)


def watch_jobs(agent: InProcessAgent) -> list[str]:
    return [job["name"] for job in agent.call(agent.agent.scheduler.jobs) if job["name"].startswith("drawer-watch-")]


def test_a_drawer_pushed_shut_is_reported_and_no_longer_polled(tmp_path: Path, printer: VirtualPrinter) -> None:
    agent = start_agent(tmp_path / "agent", printer, drawer_sensor_poll_s=0.1)
    try:
        hardware = agent.agent.component(wiring.HARDWARE)
        events = agent.call(lambda: agent.agent.events.subscribe({"drawer", "drawer.closed"}))
        assert run(agent, hardware.open_drawer("cash")) == "open"
        opened = run(agent, events.next(10))
        assert (opened.kind, opened.data["drawer"], opened.data["state"]) == ("drawer", "cash", "open")
        assert watch_jobs(agent) == ["drawer-watch-cash"]
        assert run(agent, hardware.open_drawer("cash")) == "open"  # opened again while open: still one watch
        assert run(agent, events.next(10)).kind == "drawer"
        assert watch_jobs(agent) == ["drawer-watch-cash"]

        printer.drawer.close()  # the cashier pushes it shut
        closed = run(agent, events.next(15))
        assert (closed.kind, closed.data["drawer"], closed.data["state"]) == ("drawer.closed", "cash", "closed")
        assert closed.data["open_s"] >= 0
        assert watch_jobs(agent) == []  # closed: the sensor is not read any more

        assert run(agent, hardware.open_drawer("cash")) == "open"  # the next opening is watched again
        assert watch_jobs(agent) == ["drawer-watch-cash"]
    finally:
        agent.stop()


def test_a_drawer_without_a_sensor_is_not_polled(tmp_path: Path, printer: VirtualPrinter) -> None:
    with VirtualSerialDrawer() as drawer:
        agent = start_agent(tmp_path / "agent", printer, drawer_url=f"serial://{drawer.path}?status_query=")
        try:
            assert run(agent, agent.agent.component(wiring.HARDWARE).open_drawer("cash")) == "unknown"
            assert drawer.wait_for_kicks(1, 5)
            assert watch_jobs(agent) == []
        finally:
            agent.stop()


def test_a_failed_no_sale_is_refused_and_published(tmp_path: Path, printer: VirtualPrinter) -> None:
    # the cash drawer hangs on a serial port that is not there (unplugged)
    extra = trust_section() + hardware_section(printer.url, drawer_url=f"serial://{tmp_path / 'no-such-tty'}")
    write_agent_config(tmp_path / "agent", device_id=DEVICE, extra=extra)
    till = start_till(tmp_path, printer)
    try:
        till.login("c-admin")
        events = till.agent.call(
            lambda: till.agent.agent.events.subscribe({"drawer", "drawer.failed", "drawer.no_sale"})
        )
        with pytest.raises(SalesRefused) as refused:
            till.run(till.sales.open_drawer(till.tokens["c-admin"]))
        assert refused.value.code == "drawer.failed" and "no-such-tty" in str(refused.value)
        failed = till.run(events.next(5))
        assert (failed.kind, failed.data["drawer"], failed.data["cashier_id"]) == ("drawer.failed", "cash", "c-admin")
        assert "no-such-tty" in failed.data["error"]
        # audited before the attempt, as every no-sale is
        assert [b["details"]["drawer"] for b in till.outbox("up.event") if b["kind"] == "drawer.no_sale"] == ["cash"]
    finally:
        till.stop()
