"""Fixtures of the sales tests (tests/agent/test_sales_*.py): one simulated printer and one
running till per test module; see test_sales_support.py for the till itself."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from drivers.sim.printer import VirtualPrinter
from tests.agent.test_sales_support import Till, start_till


@pytest.fixture(scope="module")
def printer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VirtualPrinter]:
    sim = VirtualPrinter(preview_dir=tmp_path_factory.mktemp("previews")).start()
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def till(tmp_path_factory: pytest.TempPathFactory, printer: VirtualPrinter) -> Iterator[Till]:
    running = start_till(tmp_path_factory.mktemp("sales"), printer)
    running.licence()
    for who in ("c-sell", "c-sell2", "c-refund", "c-admin"):
        running.login(who, "shop-1" if who == "c-sell" else None)
    try:
        yield running
    finally:
        running.stop()
