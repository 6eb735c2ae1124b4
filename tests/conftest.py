from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from broker.launcher import Mosquitto
from tests.support.agent_process import AgentProcess, write_agent_config


def _import_escpos_without_its_root_handler() -> None:
    """python-escpos calls logging.basicConfig() when imported: a root handler bound to the
    sys.stderr of that moment, which under pytest is a capture stream closed later, so any
    in-process log line (a virtual printer thread's) then prints a "Logging error". The agent
    drops foreign handlers in setup_logging; the test process does it here, once."""
    root = logging.getLogger()
    before = list(root.handlers)
    import escpos.capabilities  # noqa: F401 - imported for its side effect, which is undone

    for handler in [h for h in root.handlers if h not in before]:
        root.removeHandler(handler)


_import_escpos_without_its_root_handler()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A private Mosquitto on a free port, killed at the end of the test."""
    broker = Mosquitto(tmp_path / "mosquitto").start()
    try:
        yield broker
    finally:
        broker.kill()


@pytest.fixture
def agent_config(tmp_path: Path) -> Path:
    return write_agent_config(tmp_path / "agent")


@pytest.fixture
def agent_process(agent_config: Path) -> Iterator[AgentProcess]:
    process = AgentProcess(agent_config)
    try:
        yield process
    finally:
        process.kill()


# Property tests (tests/fuzz and others): `make test` replays the same examples on every run
# (derandomized, no example database), so a red CI run is reproducible and never a coin toss.
# `make fuzz` explores with fresh random examples: run it to look for new inputs that break us.
settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("KASSA_HYPOTHESIS_PROFILE", "ci"))
